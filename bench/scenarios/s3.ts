/**
 * S3: SSE saturation through the real route. The server publishes batches of 16 events as fast as
 * the slowest connection allows (each batch waits until nothing is buffered and no socket waits for
 * 'drain'; the raw server is paced the same way). Delivered events/s = client-counted events over the
 * span from the first to the last receive, asserted exact.
 *
 * Four servers, interleaved: sluice (default, close-delimited body), raw (Node's default chunked
 * encoding: the anchor of the goal), raw-close (the raw server with sluice's framing: the strictest
 * like-for-like reference), sluice-chunked (sluice with `chunked: true`, like-for-like with raw) and
 * sluice-traced (sluice under an OpenTelemetry tracer: a span per connection, none per event).
 */
import {
  checkDelivery,
  type Ctx,
  failures,
  interleave,
  makeRows,
  measureDelivery,
  noisyRounds,
  openStreamsOn,
  perVariant,
  type Rig,
  type Row,
  SHARED,
  warmUp
} from "../lib/harness.js"
import { human, sig, sum } from "../lib/stats.js"

const BATCH = 16
/** The framing references (see the header). */
const FRAMING = {
  "raw-close": { mode: "raw", framing: "close" },
  "sluice-chunked": { mode: "sluice", route: { chunked: true } },
  // Under an OpenTelemetry tracer: a span per connection (and per request), none per event.
  "sluice-traced": { mode: "sluice", otel: true }
} as const
const SIZE = 70

interface Rep {
  readonly rate: number
  /** Server CPU ms per 1 M deliveries. */
  readonly serverCpuPerM: number
  /** Wall ms inside the synchronous publish call (sluice: validation, log append, fan-out) per 1 M deliveries. */
  readonly publishPerM: number
  /** Load-generator CPU time / wall time over the measured span (1.0 = one core busy). */
  readonly clientCpu: number
  readonly error?: string | undefined
}

const clientProcesses = (k: number) => (k >= 1000 ? 2 : 1)

/** One measured saturation run on a rig whose `k` streams are open; the first round warms up. */
const rep = async (ctx: Ctx, name: string, rig: Rig, k: number, events: number, warmFirst: boolean): Promise<Rep> => {
  const { clients, server } = rig
  if (warmFirst) {
    // 10 % of the events (at least 10 batches), delivered and checked, outside the timing.
    const warm = Math.max(BATCH * 10, Math.round(events / 10 / BATCH) * BATCH)
    await warmUp(clients, warm, 120_000, () => server.call("saturate", { events: warm, batch: BATCH, size: SIZE }, 120_000))
    const warmError = await checkDelivery(clients, k, warm, 50)
    if (warmError !== undefined) {
      return { rate: Number.NaN, serverCpuPerM: Number.NaN, publishPerM: Number.NaN, clientCpu: 0, error: warmError }
    }
  }
  const { error, published: sat, results } = await measureDelivery(
    ctx,
    name,
    rig,
    { k, perConn: events, timeoutMs: 300_000 },
    () => server.call<{ cpuMs: number; ms: number; publishMs: number }>("saturate", { events, batch: BATCH, size: SIZE }, 300_000)
  )
  const first = Math.min(...results.map((r) => r.tFirst ?? Infinity))
  const last = Math.max(...results.map((r) => r.tLast ?? -Infinity))
  const deliveries = events * k
  return {
    rate: error === undefined ? (deliveries / (last - first)) * 1000 : Number.NaN,
    serverCpuPerM: (sat.cpuMs / deliveries) * 1e6,
    publishPerM: (sat.publishMs / deliveries) * 1e6,
    clientCpu: sum(results.map((r) => r.cpuMs)) / Math.max(...results.map((r) => r.wallMs)),
    error
  }
}

export const s3 = async (ctx: Ctx): Promise<Array<Row>> => {
  const ks = ctx.smoke ? [1, 10, 100] : [1, 100, 1000, 5000]
  const deliveries = ctx.smoke ? 40_000 : 3_000_000
  const rows: Array<Row> = []
  for (const k of ks) {
    // Small K is bounded by the publish path, not the sockets: fewer events keep it to seconds.
    const events = Math.max(BATCH * 20, Math.round(Math.min(deliveries / k, deliveries / 10) / BATCH) * BATCH)
    const rigs = await ctx.pool.get(ctx, { ...SHARED, ...FRAMING }, clientProcesses(k))
    const use = (rig: Rig): Rig => ({ server: rig.server, clients: rig.clients.slice(0, clientProcesses(k)) })
    const variants = ["sluice", "raw", "raw-close", "sluice-chunked", "sluice-traced"] as const
    for (const variant of variants) await openStreamsOn(use(rigs[variant]), k)
    const reps = await interleave(
      ctx,
      `S3 K=${k}`,
      variants,
      (mode, round) => rep(ctx, `S3-K${k}-${mode}-r${round + 1}`, use(rigs[mode]), k, events, round === 0),
      (r) =>
        r.error ??
          `${human(r.rate)} ev/s, server ${sig(r.serverCpuPerM)} ms CPU/M (publish call ${sig(r.publishPerM)} ms/M), ` +
            `client CPU ${sig(r.clientCpu, 2)}`,
      noisyRounds(ctx)
    )
    const errors = failures(ctx, `S3 K=${k}`, reps)
    // The load generators share one core: above ~80 % of it they, not the server, may set the pace.
    const clientBound = reps.raw.some((r) => r.clientCpu > 0.8)
    const params = { k, events, batch: BATCH, frameBytes: "~110", clientProcesses: clientProcesses(k) }
    const shared = {
      scenario: "S3",
      params,
      metric: "delivered events/s",
      better: "higher",
      baselineName: "raw coalescing node:http"
    } as const
    rows.push(...makeRows(ctx, shared, [
      {
        sluice: reps.sluice.map((r) => r.rate),
        baseline: reps.raw.map((r) => r.rate),
        goal: k === 1000 ? ">= 1.0x raw" : undefined,
        check: k === 1000 ? (r) => r.ratio >= 1.0 : undefined,
        extra: {
          serverCpuMsPerMDeliveries: perVariant(reps, (r) => sig(r.serverCpuPerM)),
          publishCallMsPerMDeliveries: perVariant(reps, (r) => sig(r.publishPerM)),
          clientCpu: perVariant(reps, (r) => sig(r.clientCpu, 2)),
          clientBound,
          ...(errors.length > 0 ? { errors } : {})
        }
      },
      // The server's CPU per delivery holds even when the load generators' core is the limit.
      {
        metric: "server CPU ms per 1M deliveries",
        better: "lower",
        sluice: reps.sluice.map((r) => r.serverCpuPerM),
        baseline: reps.raw.map((r) => r.serverCpuPerM)
      },
      // Like for like on the wire: each side with the other's framing.
      {
        params: { ...params, framing: "close-delimited, both" },
        baselineName: "raw coalescing node:http, close-delimited",
        sluice: reps.sluice.map((r) => r.rate),
        baseline: reps["raw-close"].map((r) => r.rate)
      },
      {
        params: { ...params, framing: "chunked, both" },
        sluice: reps["sluice-chunked"].map((r) => r.rate),
        baseline: reps.raw.map((r) => r.rate)
      },
      // A span per connection costs at its open and its end, never per event: the rate must not move.
      {
        params: { ...params, tracer: "OpenTelemetry, every span sampled (request and connection spans)" },
        baselineName: "sluice, no tracer",
        sluice: reps["sluice-traced"].map((r) => r.rate),
        baseline: reps.sluice.map((r) => r.rate)
      }
    ]))
  }
  return rows
}
