/**
 * S15 (issue 14 calls it "S11"; our S11 is the instrumentation cost): connects. (a) Time to open
 * 5,000 streams at once (two load generators, 200 handshakes in flight each), as the clients see
 * it: from the first request until the last stream's head and opening arrived. (b) A reconnect storm
 * with history: 1,000 clients reconnect at once, each with a `Last-Event-ID` 100 events behind the
 * head; the time until every stream has its 100 replayed events. Both against the raw server with
 * its ring, interleaved in the same run. Goal: <= 1.5x raw.
 */
import { type Ctx, failures, interleave, makeRows, openStreams, profiled, type Row, SHARED, waitConnections } from "../lib/harness.js"
import { sig } from "../lib/stats.js"

interface Rep {
  readonly openMs: number
  readonly resumeMs: number
  /** Server CPU ms per 1,000 streams opened / resumed: steadier than wall time on a loaded machine. */
  readonly openCpu: number
  readonly resumeCpu: number
  readonly error?: string | undefined
}

interface Cpu {
  readonly user: number
  readonly system: number
}

interface Replayed {
  readonly ok: boolean
  readonly failed: number
  readonly t0: number
  readonly tLast?: number
}

export const s15 = async (ctx: Ctx): Promise<Array<Row>> => {
  const k = ctx.smoke ? 500 : 5000
  const resumers = ctx.smoke ? 100 : 1000
  const behind = ctx.smoke ? 20 : 100
  const rigs = await ctx.pool.get(ctx, SHARED, 2)
  const reps = await interleave(
    ctx,
    `S15 open ${k}, resume ${resumers} x ${behind} behind`,
    ["sluice", "raw"] as const,
    async (mode, round): Promise<Rep> => {
      const { clients, server } = rigs[mode]
      const closeAll = async () => {
        await Promise.all(clients.map((c) => c.call("close")))
        await waitConnections(server, 0)
      }
      await closeAll()
      if (round === 0) {
        // Warm-up outside the timing: a fresh process runs its connect path cold (JIT).
        await openStreams(clients, k)
        await waitConnections(server, k, 60_000)
        await closeAll()
      }
      const cpuMs = async () => {
        const { cpu } = await server.call<{ cpu: Cpu }>("info")
        return (cpu.user + cpu.system) / 1000
      }
      const open0 = await cpuMs()
      const { ms: openMs } = await profiled(ctx, server, `S15-open-${mode}-r${round + 1}`, () => openStreams(clients, k))
      await waitConnections(server, k, 60_000)
      const openCpu = ((await cpuMs()) - open0) / k * 1000
      await closeAll()

      const head = await server.call<{ epoch: string; seq: number }>("burst", { events: behind + 10, size: 70 })
      const lastEventId = `${head.epoch}-${head.seq - behind}`
      const resume0 = await cpuMs()
      const results = await profiled(ctx, server, `S15-resume-${mode}-r${round + 1}`, () =>
        Promise.all(clients.map((c, i) =>
          c.call<Replayed>("replay", {
            n: Math.floor(resumers / clients.length) + (i < resumers % clients.length ? 1 : 0),
            path: "/events?topic=bench",
            lastEventId,
            perConn: behind,
            timeoutMs: 60_000
          }, 90_000)
        )))
      const resumeCpu = ((await cpuMs()) - resume0) / resumers * 1000
      await closeAll()
      const incomplete = results.find((r) => !r.ok || r.tLast === undefined)
      if (incomplete !== undefined) {
        return { openMs, openCpu, resumeCpu, resumeMs: Number.NaN, error: `resume incomplete: ${JSON.stringify(incomplete)}` }
      }
      const resumeMs = Math.max(...results.map((r) => r.tLast!)) - Math.min(...results.map((r) => r.t0))
      return { openMs, resumeMs, openCpu, resumeCpu }
    },
    (r) =>
      r.error ??
        `opened ${k} in ${sig(r.openMs)} ms (server ${sig(r.openCpu)} ms CPU/1k); ${resumers} resumed in ${sig(r.resumeMs)} ms ` +
          `(server ${sig(r.resumeCpu)} ms CPU/1k)`
  )
  const errors = failures(ctx, "S15", reps)
  const shared = { scenario: "S15", better: "lower", baselineName: "raw node:http with a ring" } as const
  return makeRows(ctx, shared, [
    {
      params: { streams: k, concurrency: "2 x 200" },
      metric: "time to open all streams ms",
      sluice: reps.sluice.map((r) => r.openMs),
      baseline: reps.raw.map((r) => r.openMs),
      goal: "<= 1.5x raw",
      check: (r) => r.ratio <= 1.5
    },
    {
      params: { clients: resumers, behind },
      metric: "time until every resumed stream has its replay ms",
      sluice: reps.sluice.map((r) => r.resumeMs),
      baseline: reps.raw.map((r) => r.resumeMs),
      goal: "<= 1.5x raw",
      check: (r) => r.ratio <= 1.5,
      ...(errors.length > 0 ? { extra: { errors } } : {})
    },
    {
      params: { streams: k },
      metric: "server CPU ms per 1,000 streams opened",
      sluice: reps.sluice.map((r) => r.openCpu),
      baseline: reps.raw.map((r) => r.openCpu)
    },
    {
      params: { clients: resumers, behind },
      metric: "server CPU ms per 1,000 resumes",
      sluice: reps.sluice.map((r) => r.resumeCpu),
      baseline: reps.raw.map((r) => r.resumeCpu)
    }
  ])
}
