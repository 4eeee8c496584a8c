/**
 * A span per SSE connection, read through OpenTelemetry (`@effect/opentelemetry` with the SDK's
 * in-memory exporter): it starts with the session and ends when the session is released, with the
 * end reason, the events delivered and the lifetime; nothing is recorded per event.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { assert, describe, it } from "@effect/vitest"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as HttpApp from "@effect/platform/HttpApp"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as EventBus from "../../src/EventBus.js"
import * as SseRoute from "../../src/SseRoute.js"
import { formatId } from "../../src/internal/event.js"
import { startServer } from "../utils/server.js"
import { openStream, request, waitFor } from "../utils/sse.js"

/** Runs `body` with an OpenTelemetry tracer; `spans()` reads the finished spans so far. */
const traced = <A, E, R>(body: (spans: () => ReadonlyArray<ReadableSpan>) => Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const exporter = new InMemorySpanExporter()
    return body(() => exporter.getFinishedSpans()).pipe(
      Effect.provide(NodeSdk.layer(() => ({ spanProcessor: new SimpleSpanProcessor(exporter) })))
    )
  })

const connections = (spans: ReadonlyArray<ReadableSpan>) => spans.filter((s) => s.name === "SseRoute.connection")

describe("SseRoute connection spans", () => {
  it.live("one span per connection: end reason, events delivered and lifetime; none per event", () =>
    traced((spans) =>
      Effect.scoped(Effect.gen(function*() {
        const { bus, url } = yield* startServer()
        const stream = yield* Effect.promise(() => openStream(`${url}/events?topic=orders/*`))
        // 40 events in 4 batches, each read before the next: several flushes, one connection
        for (let batch = 0; batch < 4; batch++) {
          yield* bus.publishAll(Array.from({ length: 10 }, (_, i) => ({ topic: "orders/1", data: `${batch}-${i}` })))
          yield* waitFor("the batch", () => stream.parsed().events.length === (batch + 1) * 10, 20_000)
        }
        assert.deepStrictEqual(connections(spans()), [], "the span is open while the connection is")
        stream.close()
        yield* waitFor("the connection's span", () => connections(spans()).length === 1, 20_000)

        const [span] = connections(spans())
        assert.strictEqual(span!.attributes["sluice.end_reason"], "closed")
        assert.strictEqual(span!.attributes["sluice.events_delivered"], 40)
        assert.strictEqual(span!.attributes["sluice.outcome"], "live")
        assert.strictEqual(span!.attributes["sluice.topics"], "orders/*")
        assert.strictEqual(span!.attributes["sluice.transport"], "node")
        assert.strictEqual(span!.attributes["sluice.destroyed"], true) // the peer left
        assert.isAbove(span!.attributes["sluice.lifetime_ms"] as number, 0)
        // Besides the 4 publish spans, only the request's span and the connection's: nothing per event.
        const others = spans().filter((s) => !s.name.startsWith("EventBus.publish"))
        assert.deepStrictEqual(others.map((s) => s.name).sort(), ["SseRoute.connection", "http.server GET"])
        const request = others.find((s) => s.name === "http.server GET")!
        assert.strictEqual(span!.parentSpanContext?.spanId, request.spanContext().spanId)
      }))
    ))

  it.live("a resumed connection ended by its lifetime: the replay counts, the end reason is `lifetime`", () =>
    traced((spans) =>
      Effect.scoped(Effect.gen(function*() {
        const { bus, url } = yield* startServer({ route: { maxLifetime: "400 millis" } })
        const [first] = yield* bus.publishAll(Array.from({ length: 6 }, (_, i) => ({ topic: "t", data: `${i}` })))
        const response = yield* Effect.promise(() =>
          request(`${url}/events`, { headers: { "last-event-id": formatId(first!.id) } })
        )
        assert.include(response.body, `event: end\ndata: {"reason":"lifetime"}`)
        yield* waitFor("the connection's span", () => connections(spans()).length === 1, 20_000)
        const [span] = connections(spans())
        assert.strictEqual(span!.attributes["sluice.end_reason"], "lifetime")
        assert.strictEqual(span!.attributes["sluice.events_delivered"], 5)
        assert.strictEqual(span!.attributes["sluice.outcome"], "resumed")
        assert.strictEqual(span!.attributes["sluice.resume"], true)
        assert.strictEqual(span!.attributes["sluice.destroyed"], false)
        assert.isAtLeast(span!.attributes["sluice.lifetime_ms"] as number, 300)
      }))
    ))

  it.live("the portable transport (a web handler) has its connection span too", () =>
    Effect.gen(function*() {
      const exporter = new InMemorySpanExporter()
      const { dispose, handler } = HttpApp.toWebHandlerLayer(
        SseRoute.router,
        SseRoute.layer({ maxLifetime: "300 millis" }).pipe(
          Layer.provideMerge(EventBus.layerMemory()),
          Layer.provideMerge(NodeSdk.layer(() => ({ spanProcessor: new SimpleSpanProcessor(exporter) })))
        )
      )
      const body = yield* Effect.promise(() => handler(new Request("http://sluice.test/events")).then((r) => r.text()))
      assert.include(body, `event: end\ndata: {"reason":"lifetime"}`)
      yield* waitFor("the connection's span", () => connections(exporter.getFinishedSpans()).length === 1, 20_000)
      const [span] = connections(exporter.getFinishedSpans()) // read before dispose empties the exporter
      yield* Effect.promise(dispose)
      assert.strictEqual(span!.attributes["sluice.transport"], "portable")
      assert.strictEqual(span!.attributes["sluice.end_reason"], "lifetime")
      assert.strictEqual(span!.attributes["sluice.events_delivered"], 0)
    }))
})
