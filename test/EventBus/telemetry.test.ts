/**
 * Spans and logs of the bus, read through OpenTelemetry (`@effect/opentelemetry` with the SDK's
 * in-memory exporter) and a recording logger.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { assert, describe, it } from "@effect/vitest"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Stream from "effect/Stream"
import * as EventBus from "../../src/EventBus.js"
import * as EventLog from "../../src/EventLog.js"

const makeBus = (options?: EventBus.Options) =>
  Effect.gen(function*() {
    const log = yield* EventLog.makeMemory()
    return yield* EventBus.make(options).pipe(Effect.provideService(EventLog.EventLog, log))
  })

/** Runs `body` with an OpenTelemetry tracer whose finished spans land in the returned exporter. */
const traced = <A, E>(body: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const exporter = new InMemorySpanExporter()
    // read before the layer closes: shutting the provider down empties the exporter
    return yield* body.pipe(
      Effect.map((result) => ({ result, spans: exporter.getFinishedSpans() })),
      Effect.provide(NodeSdk.layer(() => ({ spanProcessor: new SimpleSpanProcessor(exporter) })))
    )
  })

interface Line {
  readonly level: string
  readonly message: unknown
  readonly annotations: Record<string, unknown>
}

const recordLogs = <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<Line> = []
    const logger = Logger.make(({ annotations, logLevel, message }) =>
      lines.push({ level: logLevel.label, message: Array.isArray(message) ? message.join(" ") : message, annotations: Object.fromEntries(HashMap.toEntries(annotations)) })
    )
    const result = yield* body.pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Logger.withMinimumLogLevel(LogLevel.All)
    )
    return { result, lines }
  })

describe("EventBus telemetry", () => {
  it.live("a span per publish and per batch, with topic, type, ids and batch size", () =>
    Effect.gen(function*() {
      const { spans } = yield* traced(Effect.scoped(Effect.gen(function*() {
        const bus = yield* makeBus()
        yield* bus.publish({ topic: "orders/1", type: "placed", data: "{}" })
        yield* bus.publishAll([{ topic: "orders/2", data: "a" }, { topic: "orders/2", data: "b" }])
      })))
      const byName = spans.filter((s) => s.name.startsWith("EventBus.publish"))
      assert.deepStrictEqual(byName.map((s) => s.name), ["EventBus.publish", "EventBus.publishAll"])
      const [one, batch] = byName
      assert.strictEqual(one!.attributes["sluice.topic"], "orders/1")
      assert.strictEqual(one!.attributes["sluice.type"], "placed")
      assert.strictEqual(one!.attributes["sluice.batch_size"], 1)
      assert.match(String(one!.attributes["sluice.event_id"]), /^[0-9a-z]+-1$/)
      assert.strictEqual(batch!.attributes["sluice.batch_size"], 2)
      assert.match(String(batch!.attributes["sluice.first_id"]), /-2$/)
      assert.match(String(batch!.attributes["sluice.last_id"]), /-3$/)
    }))

  it.live("a refused publish ends its span as an error", () =>
    Effect.gen(function*() {
      const { spans } = yield* traced(Effect.scoped(Effect.gen(function*() {
        const bus = yield* makeBus()
        yield* Effect.flip(bus.publish({ topic: "bad topic", data: "x" }))
      })))
      const span = spans.find((s) => s.name === "EventBus.publish")
      assert.isDefined(span)
      assert.strictEqual(span!.status.code, 2) // SpanStatusCode.ERROR
    }))

  it.live("a span per subscription start with its outcome and reset reason; stream and streamLazy too", () =>
    Effect.gen(function*() {
      const { spans } = yield* traced(Effect.scoped(Effect.gen(function*() {
        const bus = yield* makeBus()
        const first = yield* bus.publish({ topic: "t", data: "x" })
        yield* bus.subscribe({ topics: ["t"] })
        yield* bus.subscribe({ after: first.id })
        yield* bus.subscribe({ after: "nope" })
        yield* bus.stream()
        const lazy = yield* Effect.fork(Stream.runDrain(bus.streamLazy({ after: "0-0" })))
        yield* Effect.repeat(bus.stats, { until: (s) => s.subscribers === 5 })
        yield* Fiber.interrupt(lazy)
      })))
      const starts = spans.filter((s) => s.name === "EventBus.subscribe").map((s) => [
        s.attributes["sluice.topics"],
        s.attributes["sluice.outcome"],
        s.attributes["sluice.reset_reason"]
      ])
      assert.deepStrictEqual(starts, [
        ["t", "live", undefined],
        ["*", "resumed", undefined],
        ["*", "reset", "invalid"],
        ["*", "live", undefined],
        ["*", "reset", "epoch-mismatch"]
      ])
    }))

  it.effect("a reset is logged at info and an end when the scope closes: overflow as a warning, closed as debug", () =>
    Effect.gen(function*() {
      const { lines } = yield* recordLogs(Effect.scoped(Effect.gen(function*() {
        const bus = yield* makeBus({ maxEvents: 1 })
        yield* Effect.scoped(Effect.gen(function*() {
          yield* bus.subscribe({ after: "nope" })
          yield* bus.publishAll([{ topic: "t", data: "1" }, { topic: "t", data: "2" }])
        }))
        yield* Effect.scoped(bus.subscribe())
      })))
      assert.deepStrictEqual(lines.map((l) => [l.level, l.annotations]), [
        ["INFO", { "sluice.reset_reason": "invalid", "sluice.head": lines[0]!.annotations["sluice.head"] }],
        ["WARN", { "sluice.end_reason": "overflow" }],
        ["DEBUG", { "sluice.end_reason": "closed" }]
      ])
      assert.match(String(lines[0]!.message), /^subscription reset: /)
      assert.deepStrictEqual(lines.slice(1).map((l) => l.message), ["subscription ended: overflow", "subscription ended: closed"])
    }))
})
