/**
 * S12: client parse throughput. One process serves a recorded SSE body of N events (the route's
 * frame shape: `id: <epoch>-<seq>`, `event: x`, ~70 characters of `data:`) in 64 KiB writes; a
 * client process per implementation reads it over loopback: `SseClient.stream` on the fetch
 * `HttpClient` vs `eventsource@5` (also fetch), interleaved, 5 rounds after one untimed run each.
 * Each run must count exactly N events and end on the N-th id.
 */
import type { ClientResult, ClientRun } from "../clientbench.js"
import { CLIENT_CPU, type Ctx, failures, interleave, makeRows, noisyRounds, type Row, SERVER_CPU } from "../lib/harness.js"
import { spawnChild } from "../lib/ipc.js"
import { human, sig } from "../lib/stats.js"

const impls = ["sluice", "eventsource"] as const

export const s12 = async (ctx: Ctx): Promise<Array<Row>> => {
  const events = ctx.smoke ? 20_000 : 500_000
  const size = 70
  const server = await spawnChild("clientbench(server)", "clientbench.ts", {}, { cpu: ctx.pin ? CLIENT_CPU : undefined })
  const clients = Object.fromEntries(
    await Promise.all(impls.map(async (impl) =>
      [impl, await spawnChild(`clientbench(${impl})`, "clientbench.ts", {}, { cpu: ctx.pin ? SERVER_CPU : undefined })] as const
    ))
  ) as Record<(typeof impls)[number], Awaited<ReturnType<typeof spawnChild>>>
  try {
    const port = await server.call<number>("serve", { events, size }, 120_000)
    const url = `http://127.0.0.1:${port}/`
    const run = async (impl: (typeof impls)[number], n: number) => {
      const r = await clients[impl].call<ClientResult>("run", { url, impl, events: n } satisfies ClientRun, 300_000)
      const expected = `bench0client1-${n}`
      const error = r.received !== n || r.lastId !== expected
        ? `${impl}: expected ${n} events ending at ${expected}, got ${r.received} ending at ${r.lastId}`
        : undefined
      return { ...r, rate: (n / r.ms) * 1000, cpuPerEvent: (r.cpuMs * 1000) / n, error }
    }
    // Warm-up, untimed: one full run each (a 10 % run left the first rounds still warming up).
    for (const impl of impls) await run(impl, events)
    const reps = await interleave(
      ctx,
      `S12 ${events} events`,
      impls,
      (impl) => run(impl, events),
      (r) => r.error ?? `${human(r.rate)} events/s, ${sig(r.cpuPerEvent)} µs CPU per event`,
      noisyRounds(ctx)
    )
    const errors = failures(ctx, "S12", reps)
    return makeRows(ctx, { scenario: "S12", params: { events, size, transport: "fetch" }, baselineName: "eventsource@5" }, [
      {
        metric: "events/s",
        better: "higher",
        sluice: reps.sluice.map((r) => r.rate),
        baseline: reps.eventsource.map((r) => r.rate),
        ...(errors.length > 0 ? { extra: { errors } } : {})
      },
      {
        metric: "client CPU µs per event",
        better: "lower",
        sluice: reps.sluice.map((r) => r.cpuPerEvent),
        baseline: reps.eventsource.map((r) => r.cpuPerEvent)
      }
    ])
  } finally {
    await Promise.all([server.stop(), ...Object.values(clients).map((c) => c.stop())])
  }
}
