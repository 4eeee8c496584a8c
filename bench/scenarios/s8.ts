/**
 * S8: churn. 300 stream opens per second for 60 s (10 % aborted before the response, the rest
 * destroyed by the client after 0.1–1 s) while 20 events/s are published. Afterwards the server must
 * hold no stream (its own count, the bus's subscriber count and the open responses all back to 0)
 * and its heap after GC must be within 5 % of the start. The log is filled to capacity first, so
 * retained events do not count as growth. The raw server runs the same churn for reference.
 */
import { type Ctx, interleave, makeRows, perVariant, type Row, SHARED, waitConnections } from "../lib/harness.js"
import { sig } from "../lib/stats.js"

interface Memory {
  readonly heapUsed: number
  readonly rss: number
  readonly resources: Record<string, number>
}

interface Rep {
  readonly heapRatio: number
  readonly opensPerSec: number
  readonly backToZero: boolean
  readonly zeroAfterMs: number
  readonly churn: { started: number; streamed: number; aborted: number; errors: number; ms: number }
  readonly resourcesBefore: Record<string, number>
  readonly resourcesAfter: Record<string, number>
}

const LOG_CAPACITY = 10_000

export const s8 = async (ctx: Ctx): Promise<Array<Row>> => {
  const durationMs = ctx.smoke ? 3_000 : 60_000
  const churn = { perSec: 300, durationMs, holdMinMs: 100, holdMaxMs: 1_000, abortFraction: 0.1, path: "/events?topic=bench" }
  const rigs = await ctx.pool.get(ctx, SHARED, 1)
  const reps = await interleave(
    ctx,
    `S8 churn ${churn.perSec}/s for ${durationMs / 1000} s`,
    ["sluice", "raw"] as const,
    async (mode): Promise<Rep> => {
      const { clients, server } = rigs[mode]
      const client = clients[0]!
      // Warm-up churn, then fill the log to capacity, then the starting point.
      await Promise.all([
        client.call("churn", { ...churn, durationMs: Math.min(2_000, durationMs) }, 60_000),
        server.call("rate", { perSec: 20, durationMs: Math.min(2_000, durationMs), size: 70 })
      ])
      await waitConnections(server, 0, 15_000)
      await server.call("burst", { events: LOG_CAPACITY, size: 70 })
      const m0 = await server.call<Memory>("memory")
      const [result] = await Promise.all([
        client.call<Rep["churn"]>("churn", churn, durationMs + 120_000),
        server.call("rate", { perSec: 20, durationMs, size: 70 }, durationMs + 60_000)
      ])
      const t0 = performance.now()
      const backToZero = await waitConnections(server, 0, 15_000).then(() => true, () => false)
      const zeroAfterMs = performance.now() - t0
      const m1 = await server.call<Memory>("memory")
      return {
        heapRatio: m1.heapUsed / m0.heapUsed,
        opensPerSec: (result.started / durationMs) * 1000,
        backToZero,
        zeroAfterMs,
        churn: result,
        resourcesBefore: m0.resources,
        resourcesAfter: m1.resources
      }
    },
    (r) =>
      `heap after/before ${sig(r.heapRatio, 4)}, ${sig(r.opensPerSec)} opens/s (${r.churn.streamed} streamed, ` +
      `${r.churn.aborted} aborted early, ${r.churn.errors} errors), back to 0: ${r.backToZero} ` +
      `(${sig(r.zeroAfterMs)} ms); resources ${JSON.stringify(r.resourcesBefore)} -> ${JSON.stringify(r.resourcesAfter)}`,
    1
  )
  const errors = reps.sluice.flatMap((r) => (r.backToZero ? [] : [ctx.fail("S8: sluice did not return to 0 streams")]))
  const params = { opensPerSec: churn.perSec, durationMs, holdMs: `${churn.holdMinMs}-${churn.holdMaxMs}`, abortFraction: churn.abortFraction, eventsPerSec: 20 }
  return makeRows(ctx, { scenario: "S8", params, baselineName: "raw node:http, same churn" }, [
    {
      metric: "heap after/before churn (after GC)",
      better: "lower",
      sluice: reps.sluice.map((r) => r.heapRatio),
      baseline: reps.raw.map((r) => r.heapRatio),
      goal: "back to 0 streams; heap within 5 %",
      check: (r) => reps.sluice.every((x) => x.backToZero) && r.sluice <= 1.05 && r.sluice >= 0.95,
      extra: {
        churn: perVariant(reps, (r) => r.churn),
        resources: perVariant(reps, (r) => ({ before: r.resourcesBefore, after: r.resourcesAfter })),
        ...(errors.length > 0 ? { errors } : {})
      }
    },
    {
      metric: "stream opens/s sustained",
      better: "higher",
      sluice: reps.sluice.map((r) => r.opensPerSec),
      baseline: reps.raw.map((r) => r.opensPerSec)
    }
  ])
}
