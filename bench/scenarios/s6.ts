/**
 * S6: one stalled client (a raw socket that sends the GET and never reads) among K live streams at
 * a fixed rate, against the same run without it, on one sluice server. Reports the live streams'
 * latency with/without, when the stalled one was ended (overflow or stalled) and destroyed, and the
 * peak memory held for it (its bus buffer plus the socket's userland write buffer, sampled every
 * 100 ms) against its cap. The rate keeps the server well below saturation: on this machine one
 * socket write costs ~15-20 µs, so 1,000 streams at 100 events/s would already fill a core.
 */
import {
  checkDelivery,
  type Ctx,
  failures,
  interleave,
  makeRows,
  noisyRounds,
  openStreamsOn,
  perVariant,
  profiled,
  receiveWhile,
  resetAll,
  type Rig,
  type Row,
  waitConnections,
  warmUp,
  withRigs
} from "../lib/harness.js"
import { stealMeter } from "../lib/env.js"
import { latencyQuantiles, quantile, sig } from "../lib/stats.js"

const PATH = "/events?topic=bench"
const BUCKET_MS = 2_000
const STALLED_PATH = "/events?topic=bench&topic=bulk"
/** The bus's default per-subscriber byte cap (the route keeps it). */
const MAX_BYTES = 1024 * 1024
/** Slack for the socket's own userland buffer: the 16 KiB high-water mark plus the write that crossed it. */
const SOCKET_SLACK = 64 * 1024

interface Sample {
  readonly maxStalledWritable: number
  readonly maxBacklogBytes: number
  /** The largest single subscriber buffer seen (bus byte accounting): the stalled one's. */
  readonly maxSubscriberBytes: number
  readonly maxHeapUsed: number
  readonly endedAfterMs?: number
  readonly closedAfterMs?: number
  readonly ended_overflow?: number
  readonly ended_stalled?: number
  /** Wall ms at the start of the sampling. */
  readonly t0: number
  readonly gcCount: number
  readonly gcTotalMs: number
  readonly gcMaxMs: number
  /** Major GCs: [ms since the start, pause ms]. */
  readonly gcMajor: ReadonlyArray<readonly [number, number]>
}

interface Rep {
  readonly p50: number
  readonly p99: number
  /** The live streams' p99 per 2-second bucket of the run: when the latency moves. */
  readonly p99Timeline: ReadonlyArray<number>
  readonly sample: Sample
  readonly heapAfterGc: number
  /** Share of CPU time the hypervisor gave to other guests during the rep: latency follows it here. */
  readonly stealPct: number | undefined
  readonly error?: string | undefined
}

export const s6 = async (ctx: Ctx): Promise<Array<Row>> => {
  // The live streams follow `bench` at a fixed rate. The stalled client also follows `bulk`, large
  // events nobody else reads (published in both variants), so that it fills the kernel's socket
  // buffers (~4 MB here) and its own cap within the run instead of after minutes.
  const p = ctx.smoke
    ? { k: 50, perSec: 100, size: 70, bulkPerSec: 200, bulkSize: 8192, durationMs: 6_000, stallTimeoutMs: 1_000, writeDeadlineMs: 1_000 }
    : { k: 1000, perSec: 20, size: 70, bulkPerSec: 100, bulkSize: 8192, durationMs: 20_000, stallTimeoutMs: 5_000, writeDeadlineMs: 3_000 }
  const events = Math.round((p.durationMs / 1000) * p.perSec)
  const sampleEvery = Math.max(1, Math.round(p.k / 100))
  // A short log: the bulk events (8 KiB, plus their encoded frames) would otherwise keep ~64 MiB
  // alive in the log and load the GC for both variants; S6 needs no resume.
  const config = { mode: "sluice", logMaxEvents: 2_000, route: { stallTimeoutMs: p.stallTimeoutMs, writeDeadlineMs: p.writeDeadlineMs } }
  // How long the bulk topic may keep feeding a stalled client that has not been destroyed yet: the
  // kernel takes a variable 4-16 MB before the bus buffer starts to fill.
  const BULK_GRACE_MS = 45_000
  const publish = (server: Rig["server"], durationMs: number, stalled = false) =>
    Promise.all([
      server.call("rate", { perSec: p.perSec, durationMs, size: p.size }, durationMs + 60_000),
      server.call("rate", {
        perSec: p.bulkPerSec,
        size: p.bulkSize,
        topic: "bulk",
        ...(stalled
          ? { durationMs: durationMs + BULK_GRACE_MS, minDurationMs: durationMs, untilStalledClosed: true }
          : { durationMs })
      }, durationMs + BULK_GRACE_MS + 60_000)
    ])

  const rep = async (ctx: Ctx, name: string, rig: Rig, stalled: boolean): Promise<Rep> => {
    const { clients, server } = rig
    if (stalled) {
      await clients[0]!.call("stall", { path: STALLED_PATH })
      await waitConnections(server, p.k + 1)
    }
    await resetAll(clients)
    const steal = stealMeter()
    await server.call("sampleStart", { everyMs: 100 })
    // The live streams are measured over the first `durationMs`; with the stalled client the bulk
    // topic goes on (bounded) until it has been ended and destroyed.
    await profiled(ctx, server, name, () =>
      receiveWhile(clients, events, p.durationMs + BULK_GRACE_MS + 60_000, () => publish(server, p.durationMs, stalled)))
    if (stalled) await waitConnections(server, p.k, p.writeDeadlineMs + p.stallTimeoutMs + 10_000).catch(() => {})
    const sample = await server.call<Sample>("sampleStop")
    const stealPct = steal()
    const error = await checkDelivery(clients, p.k, events)
    const timelines = await Promise.all(clients.map((c) => c.call<{ at: Array<number>; ms: Array<number> }>("latencyTimeline")))
    const samples = timelines.flatMap((t) => t.ms)
    const buckets: Array<Array<number>> = Array.from({ length: Math.ceil(p.durationMs / BUCKET_MS) + 1 }, () => [])
    for (const t of timelines) {
      t.at.forEach((at, i) => buckets[Math.min(buckets.length - 1, Math.max(0, Math.floor((at - sample.t0) / BUCKET_MS)))]!.push(t.ms[i]!))
    }
    const memory = await server.call<{ heapUsed: number }>("memory")
    return {
      ...latencyQuantiles(samples),
      p99Timeline: buckets.map((b) => sig(quantile(b, 0.99))),
      sample,
      heapAfterGc: memory.heapUsed,
      stealPct,
      error
    }
  }

  const reps = await withRigs(ctx, { sluice: config }, 1, async ({ sluice }) => {
    await openStreamsOn(sluice, p.k, { path: PATH, sampleEvery })
    // Warm-up: two seconds of the same load.
    await warmUp(sluice.clients, p.perSec * 2, 60_000, () => publish(sluice.server, 2_000))
    return interleave(
      ctx,
      `S6 K=${p.k} ${p.perSec}/s`,
      ["stalled", "clean"] as const,
      (variant, round) => rep(ctx, `S6-${variant}-r${round + 1}`, sluice, variant === "stalled"),
      (r) =>
        r.error ??
          `p50 ${sig(r.p50)} ms, p99 ${sig(r.p99)} ms; stalled ended after ${sig(r.sample.endedAfterMs ?? NaN)} ms ` +
            `(overflow ${r.sample.ended_overflow ?? 0}, stalled ${r.sample.ended_stalled ?? 0}), closed after ` +
            `${sig(r.sample.closedAfterMs ?? NaN)} ms, peak held ${r.sample.maxSubscriberBytes} B buffered + ` +
            `${r.sample.maxStalledWritable} B in the socket; p99 per ${BUCKET_MS / 1000} s: ${r.p99Timeline.join(" ")}; ` +
            `GC ${r.sample.gcCount}x, max ${sig(r.sample.gcMaxMs)} ms, ` +
            (r.sample.gcMajor.length === 0
              ? "no major GC"
              : `major at ${r.sample.gcMajor.map(([at, ms]) => `${sig(at / 1000, 2)} s (${ms} ms)`).join(", ")}`),
      noisyRounds(ctx)
    )
  })
  const errors = failures(ctx, "S6", reps)
  const held = reps.stalled.map((r) => r.sample.maxSubscriberBytes + r.sample.maxStalledWritable)
  const cap = MAX_BYTES + SOCKET_SLACK
  const allEnded = reps.stalled.every((r) => r.sample.endedAfterMs !== undefined && r.sample.closedAfterMs !== undefined)
  const params = { ...p }
  const extra = {
    stalledEndedAfterMs: reps.stalled.map((r) => r.sample.endedAfterMs ?? null),
    stalledEndReason: reps.stalled.map((r) =>
      r.sample.ended_overflow !== undefined ? "overflow" : r.sample.ended_stalled !== undefined ? "stalled" : "not ended"
    ),
    stalledDestroyedAfterMs: reps.stalled.map((r) => r.sample.closedAfterMs ?? null),
    stalledPeakBuffered: reps.stalled.map((r) => r.sample.maxSubscriberBytes),
    serverGc: perVariant(reps, (r) => ({
      count: r.sample.gcCount,
      totalMs: sig(r.sample.gcTotalMs),
      maxMs: sig(r.sample.gcMaxMs),
      major: r.sample.gcMajor
    })),
    hostStealPct: perVariant(reps, (r) => r.stealPct ?? null),
    p99TimelineMs: { bucketMs: BUCKET_MS, ...perVariant(reps, (r) => r.p99Timeline) },
    stalledPeakSocketWritable: reps.stalled.map((r) => r.sample.maxStalledWritable),
    busWidePeakBuffered: perVariant(reps, (r) => r.sample.maxBacklogBytes),
    peakHeapUsed: perVariant(reps, (r) => r.sample.maxHeapUsed),
    heapAfterGc: perVariant(reps, (r) => r.heapAfterGc),
    ...(errors.length > 0 ? { errors } : {})
  }
  const shared = { scenario: "S6", params, better: "lower", baselineName: "same run without the stalled client" } as const
  return makeRows(ctx, shared, [
    {
      metric: "live streams' p99 latency ms",
      sluice: reps.stalled.map((r) => r.p99),
      baseline: reps.clean.map((r) => r.p99),
      goal: "within 20 % (ratio <= 1.2)",
      check: (r) => r.ratio <= 1.2,
      extra
    },
    {
      metric: "live streams' p50 latency ms",
      sluice: reps.stalled.map((r) => r.p50),
      baseline: reps.clean.map((r) => r.p50)
    },
    {
      metric: "peak bytes held for the stalled client",
      baselineName: "its cap (maxBytes + 64 KiB socket slack)",
      sluice: held,
      baseline: held.map(() => cap),
      goal: "ended (overflow/stalled) and destroyed; peak <= cap",
      check: (r) => allEnded && r.sluice <= cap
    }
  ])
}
