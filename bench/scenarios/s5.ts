/**
 * S5: wide low-rate fan-out through the real route: K streams, 10 events/s published singly, the
 * publish time embedded in `data`; p50/p99 publish→receive on a sample of the connections
 * (~100 of them), every event asserted delivered to every stream.
 */
import {
  type Ctx,
  failures,
  interleave,
  latencyAll,
  makeRows,
  measureDelivery,
  openStreamsOn,
  perVariant,
  type Rig,
  type Row,
  SHARED,
  warmUp
} from "../lib/harness.js"
import { latencyQuantiles, quantile, sig } from "../lib/stats.js"

const SIZE = 70
const RATE = 10

interface Rep {
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly samples: number
  readonly serverCpuMsPerEvent: number
  readonly error?: string | undefined
}

const rep = async (ctx: Ctx, name: string, rig: Rig, k: number, durationMs: number): Promise<Rep> => {
  const events = Math.round((durationMs / 1000) * RATE)
  const { error, published: pub } = await measureDelivery(
    ctx,
    name,
    rig,
    { k, perConn: events, timeoutMs: durationMs + 60_000 },
    () => rig.server.call<{ cpuMs: number; maxLateMs: number }>("rate", { perSec: RATE, durationMs, size: SIZE }, durationMs + 60_000)
  )
  const samples = await latencyAll(rig.clients)
  return {
    ...latencyQuantiles(samples),
    max: quantile(samples, 1),
    samples: samples.length,
    serverCpuMsPerEvent: pub.cpuMs / events,
    error
  }
}

export const s5 = async (ctx: Ctx): Promise<Array<Row>> => {
  const k = ctx.smoke ? 200 : 5000
  const durationMs = ctx.smoke ? 2_000 : 10_000
  const clientCount = k >= 1000 ? 2 : 1
  const sampleEvery = Math.max(1, Math.round(k / 100))
  const rigs = await ctx.pool.get(ctx, SHARED, clientCount)
  for (const rig of [rigs.sluice, rigs.raw]) {
    await openStreamsOn(rig, k, { sampleEvery })
    // Warm-up: one second of the same load, outside the measurement.
    await warmUp(rig.clients, RATE, 60_000, () => rig.server.call("rate", { perSec: RATE, durationMs: 1_000, size: SIZE }))
  }
  const reps = await interleave(
    ctx,
    `S5 K=${k} ${RATE}/s`,
    ["sluice", "raw"] as const,
    (mode, round) => rep(ctx, `S5-K${k}-${mode}-r${round + 1}`, rigs[mode], k, durationMs),
    (r) => r.error ?? `p50 ${sig(r.p50)} ms, p99 ${sig(r.p99)} ms, max ${sig(r.max)} ms (${r.samples} samples)`
  )
  const errors = failures(ctx, "S5", reps)
  const params = { k, eventsPerSec: RATE, durationMs, sampledStreams: Math.ceil(k / sampleEvery) }
  const extra = {
    maxMs: perVariant(reps, (r) => sig(r.max)),
    serverCpuMsPerEvent: perVariant(reps, (r) => sig(r.serverCpuMsPerEvent)),
    ...(errors.length > 0 ? { errors } : {})
  }
  return makeRows(ctx, { scenario: "S5", params, better: "lower", baselineName: "raw coalescing node:http" }, [
    {
      metric: "p50 latency ms",
      sluice: reps.sluice.map((r) => r.p50),
      baseline: reps.raw.map((r) => r.p50),
      goal: "<= 10 ms and <= 2x raw",
      check: (r) => r.sluice <= 10 && r.ratio <= 2,
      extra
    },
    {
      metric: "p99 latency ms",
      sluice: reps.sluice.map((r) => r.p99),
      baseline: reps.raw.map((r) => r.p99),
      goal: "<= 25 ms",
      check: (r) => r.sluice <= 25
    }
  ])
}
