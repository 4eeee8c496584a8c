/**
 * S1: in-process fan-out (bench/inproc.ts in its own process), sluice through the Effect API (a
 * `Stream` consumer and a `takeAll` loop) vs an EventEmitter feeding per-listener arrays drained in
 * a microtask, interleaved per N. Each implementation runs in a process of its own, as JMH forks per
 * benchmark: the Effect runtime is shared code, and a `Stream` consumer measured in the same process
 * made the `takeAll` loop's call sites polymorphic (and the other way round).
 */
import { type Ctx, interleave, makeRow, type Row, SERVER_CPU } from "../lib/harness.js"
import { spawnChild } from "../lib/ipc.js"
import { human } from "../lib/stats.js"

export const s1 = async (ctx: Ctx): Promise<Array<Row>> => {
  const ns = [1, 10, 100, 1000]
  // About a second per run at N >= 10: runs of ~0.2 s measured mostly JIT warm-up and heap growth
  // (the same case ran 30-50 % faster by its fourth repetition).
  const deliveries = ctx.smoke ? 100_000 : 16_000_000
  // The brief's shape (publishAll of 64, yield after each) and a larger yield interval that shows
  // how much of the cost is the per-batch consumer wake.
  const shapes = ctx.smoke
    ? [{ batch: 64, yieldEvery: 64 }]
    : [{ batch: 64, yieldEvery: 64 }, { batch: 64, yieldEvery: 1024 }]
  const impls = ["sluice", "sluice-takeAll", "emitter"] as const
  const children = Object.fromEntries(
    await Promise.all(impls.map(async (impl) =>
      [impl, await spawnChild(`inproc(${impl})`, "inproc.ts", {}, { cpu: ctx.pin ? SERVER_CPU : undefined })] as const
    ))
  ) as Record<(typeof impls)[number], Awaited<ReturnType<typeof spawnChild>>>
  const rows: Array<Row> = []
  try {
    for (const shape of shapes) {
      for (const n of ns) {
        // N = 1 is publish-bound (about 0.3-0.5 µs per event for sluice): fewer events keep it short.
        const events = Math.max(shape.yieldEvery, Math.round(Math.min(deliveries / n, deliveries / 4)))
        const run = (impl: (typeof impls)[number], scale = 1, profile?: string) =>
          children[impl].call<{ rate: number; file?: string }>(
            "run",
            {
              impl,
              n,
              events: Math.max(shape.yieldEvery, Math.round(events * scale)),
              ...shape,
              ...(profile === undefined ? {} : { profile })
            },
            300_000
          )
        // Warm-up at 10 % of the size, outside the timing.
        for (const impl of impls) await run(impl, 0.1)
        const reps = await interleave(
          ctx,
          `S1 N=${n} batch=${shape.batch} yieldEvery=${shape.yieldEvery}`,
          impls,
          (impl, round) =>
            run(impl, 1, ctx.prof && round === ctx.rounds - 1 ? `S1-N${n}-y${shape.yieldEvery}-${impl}` : undefined),
          (r) => `${human(r.rate)} deliveries/s${r.file === undefined ? "" : ` (profile ${r.file})`}`
        )
        for (const consumer of ["Stream", "takeAll"] as const) {
          rows.push(makeRow(ctx, {
            scenario: "S1",
            params: { n, events, ...shape, consumer },
            metric: "deliveries/s",
            better: "higher",
            baselineName: "EventEmitter + array, microtask drain",
            sluice: (consumer === "Stream" ? reps.sluice : reps["sluice-takeAll"]).map((r) => r.rate),
            baseline: reps.emitter.map((r) => r.rate),
            goal: n === 100 ? ">= 0.5x" : undefined,
            check: n === 100 ? (r) => r.ratio >= 0.5 : undefined
          }))
        }
      }
    }
  } finally {
    await Promise.all(Object.values(children).map((c) => c.stop()))
  }
  return rows
}
