/**
 * S14 (issue 14 calls it "S10"; our S10 is the Redis append): in-process publish with N subscribers
 * on unique topics, N ∈ {100, 1,000, 20,000, 100,000}, plus N / 10 prefix-pattern subscribers, against
 * a `Map<topic, Set<listener>>` emitter doing the same deliveries (see bench/fanout.ts). Each
 * implementation runs in a process of its own; per N, each subscribes once, runs an untimed warm-up,
 * then the rounds interleave. Two shapes: single `bus.publish` calls (the figures) and
 * `publishAll` of 64.
 */
import type { FanoutResult, FanoutRun } from "../fanout.js"
import { type Ctx, interleave, makeRow, type Row, SERVER_CPU } from "../lib/harness.js"
import { type Child, spawnChild } from "../lib/ipc.js"
import { median, sig } from "../lib/stats.js"

const impls = ["sluice", "emitter"] as const
type Impl = (typeof impls)[number]
const shapes = [{ batch: 1, name: "publish" }, { batch: 64, name: "publishAll(64)" }] as const

export const s14 = async (ctx: Ctx): Promise<Array<Row>> => {
  const ns = ctx.smoke ? [100, 2_000] : [100, 1_000, 20_000, 100_000]
  const budgetMs = ctx.smoke ? 50 : 1_000
  const children = Object.fromEntries(
    await Promise.all(impls.map(async (impl) =>
      [impl, await spawnChild(`fanout(${impl})`, "fanout.ts", { impl }, { cpu: ctx.pin ? SERVER_CPU : undefined })] as const
    ))
  ) as Record<Impl, Child>
  const results = new Map<string, Record<Impl, Array<FanoutResult>>>()
  try {
    for (const n of ns) {
      for (const impl of impls) await children[impl].call("setup", { n }, 600_000)
      for (const shape of shapes) {
        const run = (impl: Impl, budget: number) =>
          children[impl].call<FanoutResult>("run", { batch: shape.batch, budgetMs: budget } satisfies FanoutRun, 600_000)
        for (const impl of impls) await run(impl, budgetMs / 2) // warm-up
        const reps = await interleave(ctx, `S14 N=${n} ${shape.name}`, impls, (impl) => run(impl, budgetMs), (r) =>
          r.error ?? `${sig(r.usPerEvent)} µs per event (${r.events} events)`)
        for (const impl of impls) for (const r of reps[impl]) if (r.error !== undefined) ctx.fail(r.error)
        results.set(`${n} ${shape.batch}`, reps)
      }
    }
  } finally {
    await Promise.all(Object.values(children).map((c) => c.stop()))
  }
  const rows: Array<Row> = []
  for (const shape of shapes) {
    for (const n of ns) {
      const reps = results.get(`${n} ${shape.batch}`)!
      rows.push(makeRow(ctx, {
        scenario: "S14",
        params: { n, prefixSubscribers: n / 10, batch: shape.name },
        metric: "published events/s",
        better: "higher",
        baselineName: "Map<topic, Set<listener>> emitter",
        sluice: reps.sluice.map((r) => 1e6 / r.usPerEvent),
        baseline: reps.emitter.map((r) => 1e6 / r.usPerEvent),
        goal: ">= 0.5x",
        check: (r) => r.ratio >= 0.5,
        extra: {
          sluiceUsPerEvent: sig(median(reps.sluice.map((r) => r.usPerEvent))),
          baselineUsPerEvent: sig(median(reps.emitter.map((r) => r.usPerEvent)))
        }
      }))
    }
    const low = results.get(`${ns[0]} ${shape.batch}`)!
    const high = results.get(`${ns[ns.length - 1]} ${shape.batch}`)!
    const growth = (impl: Impl) => high[impl].map((r, i) => r.usPerEvent / low[impl][i]!.usPerEvent)
    rows.push(makeRow(ctx, {
      scenario: "S14",
      params: { n: `${ns[ns.length - 1]} vs ${ns[0]}`, batch: shape.name },
      metric: "cost per event, largest N / smallest N",
      better: "lower",
      baselineName: "the emitter's own growth",
      sluice: growth("sluice"),
      baseline: growth("emitter"),
      goal: "sluice <= 1.5",
      check: (r) => r.sluice <= 1.5
    }))
  }
  return rows
}
