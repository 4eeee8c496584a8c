/**
 * S9: resume. 100 clients reconnect at once with a `Last-Event-ID` 1,000 events behind the head;
 * the time from the first request until every stream has received all 1,000 replayed events, and
 * the replay rate, vs the raw server (a ring of encoded frames read and written in 64 KiB chunks).
 * Then 5 live events must arrive on every stream right after its replay, with no gap or duplicate
 * (exact counts).
 */
import { type Ctx, failures, interleave, makeRows, profiled, receiveWhile, type Row, SHARED, sleep } from "../lib/harness.js"
import { human, sig } from "../lib/stats.js"

interface Rep {
  readonly ms: number
  readonly rate: number
  readonly error?: string | undefined
}

const LIVE = 5

export const s9 = async (ctx: Ctx): Promise<Array<Row>> => {
  const n = ctx.smoke ? 20 : 100
  const behind = ctx.smoke ? 200 : 1000
  const rigs = await ctx.pool.get(ctx, SHARED, 1)
  const reps = await interleave(
    ctx,
    `S9 ${n} clients x ${behind} behind`,
    ["sluice", "raw"] as const,
    async (mode, round): Promise<Rep> => {
      const { clients, server } = rigs[mode]
      const client = clients[0]!
      await client.call("close")
      // Enough history (and a warm path on the first round).
      const head = await server.call<{ epoch: string; seq: number }>("burst", { events: behind + 100, size: 70 })
      const lastEventId = `${head.epoch}-${head.seq - behind}`
      const r = await profiled(ctx, server, `S9-${mode}-r${round + 1}`, () =>
        client.call<{ ok: boolean; failed: number; t0: number; tLast?: number; total: number; min: number; max: number }>(
          "replay",
          { n, path: "/events?topic=bench", lastEventId, perConn: behind, timeoutMs: 60_000 },
          90_000
        ))
      if (!r.ok || r.tLast === undefined) {
        return { ms: Number.NaN, rate: Number.NaN, error: `replay incomplete: ${JSON.stringify(r)}` }
      }
      const ms = r.tLast - r.t0
      // Live after replay: exact counts, no gap, no duplicate.
      await receiveWhile([client], behind + LIVE, 30_000, () => server.call("burst", { events: LIVE, size: 70 }))
      await sleep(100)
      const counts = await client.call<{ total: number; min: number; max: number; conns: number }>("counts")
      const error = counts.min !== behind + LIVE || counts.max !== behind + LIVE || counts.conns !== n
        ? `delivery: expected ${behind}+${LIVE} per stream on ${n} streams, got ${counts.min}..${counts.max} on ${counts.conns}`
        : undefined
      await client.call("close")
      return { ms, rate: ((n * behind) / ms) * 1000, error }
    },
    (r) => r.error ?? `all live after ${sig(r.ms)} ms, replay ${human(r.rate)} events/s`
  )
  const errors = failures(ctx, "S9", reps)
  const params = { clients: n, behind }
  return makeRows(ctx, { scenario: "S9", params, baselineName: "raw ring read + write" }, [
    {
      metric: "time until all live ms",
      better: "lower",
      sluice: reps.sluice.map((r) => r.ms),
      baseline: reps.raw.map((r) => r.ms),
      ...(errors.length > 0 ? { extra: { errors } } : {})
    },
    {
      metric: "replay events/s",
      better: "higher",
      sluice: reps.sluice.map((r) => r.rate),
      baseline: reps.raw.map((r) => r.rate)
    }
  ])
}
