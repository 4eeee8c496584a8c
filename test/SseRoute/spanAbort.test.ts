import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { assert, describe, it } from "@effect/vitest"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Effect from "effect/Effect"
import { seeded, testSeed } from "../utils/random.js"
import { slowReads, startServer } from "../utils/server.js"
import { connect, rawGet, waitFor, waitForEffect } from "../utils/sse.js"

const traced = <A, E, R>(body: (spans: () => ReadonlyArray<ReadableSpan>) => Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const exporter = new InMemorySpanExporter()
    return body(() => exporter.getFinishedSpans()).pipe(
      Effect.provide(NodeSdk.layer(() => ({ spanProcessor: new SimpleSpanProcessor(exporter) })))
    )
  })

/**
 * Peers that leave at a random moment (during the resume's slow read, before or after the head) by
 * FIN or RST: every connection's span ends (through `Session.whenReleased`), one per subscription.
 */
describe("connection spans under aborts", () => {
  it.live("every connection's span ends, whatever phase its peer left at", () =>
    traced((spans) =>
      Effect.scoped(Effect.gen(function*() {
        const rng = seeded(testSeed())
        const { bus, port, route } = yield* startServer({
          bus: { log: { maxEvents: 100_000 } },
          route: { maxReplay: 100_000, heartbeat: "200 millis", writeDeadline: "500 millis" },
          wrapLog: slowReads(10, { minMillis: 1, random: rng.next })
        })
        const stored = yield* bus.publishAll(Array.from({ length: 2_000 }, (_, i) => ({ topic: "t", data: `${i}${"x".repeat(500)}` })))
        const epoch = stored[0]!.id.epoch
        const cycles = 200
        yield* Effect.forEach(Array.from({ length: cycles }, (_, i) => i), () =>
          Effect.promise(async () => {
            const socket = await connect(port)
            socket.on("error", () => {})
            const resume = rng.next() < 0.7
            const headers: Record<string, string> = resume ? { "last-event-id": `${epoch}-${Math.floor(rng.next() * 1_900)}` } : {}
            if (rng.next() < 0.3) headers["connection"] = "keep-alive"
            socket.write(rawGet("/events?topic=t", headers))
            await new Promise((r) => setTimeout(r, Math.floor(rng.next() * 25)))
            if (rng.next() < 0.5) socket.end()
            else socket.resetAndDestroy()
          }), { concurrency: 16 })
        yield* waitForEffect(`seed ${rng.seed}: every subscriber released`, bus.stats, (s) => s.subscribers === 0, 20_000)
        yield* waitForEffect(`seed ${rng.seed}: every connection released`, route.connections, (n) => n === 0, 20_000)
        const stats = yield* bus.stats
        const made = Object.values(stats.resumes).reduce((a, b) => a + b, 0)
        const ended = () => spans().filter((s) => s.name === "SseRoute.connection").length
        assert.isAbove(made, 0, `seed ${rng.seed}: some connections were made`)
        yield* waitFor(`seed ${rng.seed}: every connection's span ended (${made} made)`, () => ended() === made, 20_000)
        assert.strictEqual(ended(), made, `seed ${rng.seed}: one span per connection`)
      }))
    ), 60_000)
})
