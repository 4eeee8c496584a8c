/**
 * S3p: saturation fed over HTTP. 1,000 open streams; a separate load generator publishes through
 * `POST /events`, one event per request, 32 requests in flight on kept-alive connections, as fast as
 * the server answers. Delivered events/s = client-counted events over the span from the first to the
 * last receive, asserted exact; plus the server's CPU per delivered event. Against the raw node:http
 * server with a POST handler that parses the same JSON body, appends to its ring and fans out the
 * same way (coalesced per macrotask). Goal: >= 1.0x raw.
 */
import type { Child } from "../lib/ipc.js"
import { type Ctx, failures, interleave, makeRows, measureDelivery, noisyRounds, openStreamsOn, perVariant, type Row, SHARED } from "../lib/harness.js"
import { human, sig, sum } from "../lib/stats.js"

const POSTERS = 32
const SIZE = 70

interface Rep {
  readonly rate: number
  readonly postsPerSec: number
  /** Server CPU µs per POST (append, answer and the fan-out of its event to every stream). */
  readonly serverCpuPerPost: number
  readonly clientCpu: number
  readonly error?: string | undefined
}

interface Cpu {
  readonly user: number
  readonly system: number
}

export const s3p = async (ctx: Ctx): Promise<Array<Row>> => {
  const k = ctx.smoke ? 100 : 1000
  const events = ctx.smoke ? 500 : 5000
  // Two processes read the streams, a third posts.
  const rigs = await ctx.pool.get(ctx, SHARED, 3)
  const streamsOf = (mode: "sluice" | "raw") => ({ server: rigs[mode].server, clients: rigs[mode].clients.slice(0, 2) })
  const poster = (mode: "sluice" | "raw"): Child => rigs[mode].clients[2]!
  for (const mode of ["sluice", "raw"] as const) await openStreamsOn(streamsOf(mode), k)
  const post = (mode: "sluice" | "raw", n: number) =>
    poster(mode).call<{ failed: number; statuses: Record<string, number>; ms: number }>("post", {
      n,
      concurrency: POSTERS,
      size: SIZE,
      topic: "bench"
    }, 300_000)
  const reps = await interleave(
    ctx,
    `S3p K=${k} POST x ${POSTERS}`,
    ["sluice", "raw"] as const,
    async (mode, round): Promise<Rep> => {
      const rig = streamsOf(mode)
      if (round === 0) {
        // Warm-up: a tenth of the events, outside the timing.
        await measureDelivery(ctx, `S3p-warm-${mode}`, rig, { k, perConn: events / 10, timeoutMs: 120_000 }, () => post(mode, events / 10))
      }
      const cpu0 = (await rig.server.call<{ cpu: Cpu }>("info")).cpu
      const { error, published, results } = await measureDelivery(
        ctx,
        `S3p-${mode}-r${round + 1}`,
        rig,
        { k, perConn: events, timeoutMs: 300_000 },
        () => post(mode, events)
      )
      const cpu1 = (await rig.server.call<{ cpu: Cpu }>("info")).cpu
      const first = Math.min(...results.map((r) => r.tFirst ?? Infinity))
      const last = Math.max(...results.map((r) => r.tLast ?? -Infinity))
      const postError = published.failed > 0 ? `${published.failed} POSTs failed: ${JSON.stringify(published.statuses)}` : undefined
      return {
        rate: error === undefined && postError === undefined ? (events * k / (last - first)) * 1000 : Number.NaN,
        postsPerSec: (events / published.ms) * 1000,
        serverCpuPerPost: ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / events,
        clientCpu: sum(results.map((r) => r.cpuMs)) / Math.max(...results.map((r) => r.wallMs)),
        error: error ?? postError
      }
    },
    (r) =>
      r.error ??
        `${human(r.rate)} ev/s delivered, ${human(r.postsPerSec)} POST/s, server ${sig(r.serverCpuPerPost)} µs CPU/POST, ` +
          `client CPU ${sig(r.clientCpu, 2)}`,
    noisyRounds(ctx)
  )
  const errors = failures(ctx, "S3p", reps)
  const shared = {
    scenario: "S3p",
    params: { k, events, posters: POSTERS, frameBytes: "~110" },
    baselineName: "raw node:http with a POST handler"
  } as const
  return makeRows(ctx, shared, [
    {
      metric: "delivered events/s",
      better: "higher",
      sluice: reps.sluice.map((r) => r.rate),
      baseline: reps.raw.map((r) => r.rate),
      goal: ">= 1.0x raw",
      check: (r) => r.ratio >= 1.0,
      extra: {
        postsPerSec: perVariant(reps, (r) => sig(r.postsPerSec)),
        clientCpu: perVariant(reps, (r) => sig(r.clientCpu, 2)),
        ...(errors.length > 0 ? { errors } : {})
      }
    },
    {
      metric: "server CPU µs per POST (append + fan-out to every stream)",
      better: "lower",
      sluice: reps.sluice.map((r) => r.serverCpuPerPost),
      baseline: reps.raw.map((r) => r.serverCpuPerPost)
    }
  ])
}
