/**
 * S7: idle memory per connection: heap and RSS of a fresh server process after GC with K1 = 1,000
 * and K2 = 10,000 idle streams open; the slope (bytes per connection) between them, sluice vs the
 * raw server. Goals (issue 14): RSS <= 20 kB per connection, heap <= 3x raw. One reference shows the
 * floor of @effect/platform itself: a route whose body is an endless `Stream` (`platform`), no bus.
 * `--heap` also writes heap snapshots at K1 and K2 of sluice and raw (diff them with
 * bench/heap-diff.ts).
 */
import { type Ctx, interleave, makeRows, openStreams, type Row, SHARED, waitConnections, withRigs } from "../lib/harness.js"
import { sig } from "../lib/stats.js"

interface Memory {
  readonly heapUsed: number
  readonly rss: number
  readonly external: number
}

interface Rep {
  readonly heapPerConn: number
  readonly rssPerConn: number
  readonly externalPerConn: number
}

export const s7 = async (ctx: Ctx): Promise<Array<Row>> => {
  const [k1, k2] = ctx.smoke ? [100, 500] : [1000, 10_000]
  const clientCount = k2 >= 1000 ? 2 : 1
  const configs = {
    sluice: SHARED.sluice,
    raw: SHARED.raw,
    platform: { mode: "platform", platformBody: "stream" }
  }
  // A fresh server per measurement: RSS does not shrink after earlier load, so a used process would
  // hide the slope.
  const reps = await interleave(
    ctx,
    `S7 K=${k1}->${k2}`,
    ["sluice", "raw", "platform"] as const,
    (mode, round) =>
      withRigs(ctx, { [mode]: configs[mode] }, clientCount, async (rigs): Promise<Rep> => {
        const { clients, server } = rigs[mode]!
        const snapshot = (k: number) =>
          ctx.heap && round === 0 && mode !== "platform" ? server.call<string>("heapSnapshot", { name: `S7-${mode}-K${k}` }).then(ctx.log) : undefined
        await openStreams(clients, k1)
        await waitConnections(server, k1)
        const m1 = await server.call<Memory>("memory")
        await snapshot(k1)
        await openStreams(clients, k2 - k1)
        await waitConnections(server, k2)
        const m2 = await server.call<Memory>("memory")
        await snapshot(k2)
        const d = k2 - k1
        return {
          heapPerConn: (m2.heapUsed - m1.heapUsed) / d,
          rssPerConn: (m2.rss - m1.rss) / d,
          externalPerConn: (m2.external - m1.external) / d
        }
      }),
    (r) => `heap ${sig(r.heapPerConn)} B/conn, RSS ${sig(r.rssPerConn)} B/conn, external ${sig(r.externalPerConn)} B/conn`
  )
  const params = { k1, k2 }
  const heap = (mode: keyof typeof reps) => reps[mode].map((r) => r.heapPerConn)
  return makeRows(ctx, { scenario: "S7", params, better: "lower", baselineName: "raw node:http" }, [
    {
      metric: "idle heap bytes/connection",
      sluice: heap("sluice"),
      baseline: heap("raw"),
      goal: "<= 3x raw",
      check: (r) => r.ratio <= 3,
      extra: {
        externalPerConn: { sluice: reps.sluice.map((r) => sig(r.externalPerConn)), raw: reps.raw.map((r) => sig(r.externalPerConn)) }
      }
    },
    {
      metric: "idle RSS bytes/connection",
      sluice: reps.sluice.map((r) => r.rssPerConn),
      baseline: reps.raw.map((r) => r.rssPerConn),
      goal: "sluice <= 20 kB/connection",
      check: (r) => r.sluice <= 20_000
    },
    {
      metric: "idle heap bytes/connection (platform floor, no bus)",
      sluice: heap("platform"),
      baseline: heap("raw"),
      extra: { note: "'sluice' column = an @effect/platform route with an endless Stream body" }
    },
    {
      metric: "idle heap bytes/connection vs platform floor",
      baselineName: "@effect/platform Stream-body route",
      sluice: heap("sluice"),
      baseline: heap("platform")
    }
  ])
}
