import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as EventBus from "../src/EventBus.js"
import * as EventLog from "../src/EventLog.js"
import { undecodableTotal } from "../src/internal/topic.js"
import * as Topic from "../src/Topic.js"

const Orders = Topic.make("orders/*", {
  OrderPlaced: Schema.Struct({ id: Schema.String, total: Schema.Number.pipe(Schema.nonNegative()) }),
  OrderShipped: Schema.Struct({ id: Schema.String, at: Schema.DateFromString })
})

const Clock = Topic.make("clock", { tick: Schema.Struct({ n: Schema.Int }) })

/** A bus over a fresh memory log, in the test's scope. */
const withBus = <A, E>(body: (log: EventLog.EventLog["Type"]) => Effect.Effect<A, E, EventBus.EventBus | Scope.Scope>) =>
  Effect.gen(function*() {
    const log = yield* EventLog.makeMemory()
    const bus = yield* EventBus.make().pipe(Effect.provideService(EventLog.EventLog, log))
    return yield* body(log).pipe(Effect.provideService(EventBus.EventBus, bus))
  })

const take = <A, E>(stream: Stream.Stream<A, E>, n: number) =>
  Effect.map(Stream.runCollect(Stream.take(stream, n)), Chunk.toArray)

const undecodable = (reason: Topic.UndecodableReason) =>
  Metric.value(Metric.tagged(Metric.tagged(undecodableTotal, "topic", "orders/*"), "reason", reason))
    .pipe(Effect.map((s) => s.count))

describe("Topic", () => {
  it.scoped("publishes encoded payloads and streams decoded messages typed by event type; fork then publish loses nothing", () =>
    withBus((log) =>
      Effect.gen(function*() {
        const orders = yield* Topic.stream(Orders)
        const consumer = yield* Effect.fork(take(orders, 3))
        const at = new Date("2026-12-01T10:00:00.000Z")
        yield* Topic.publish(Orders, { topic: "orders/1", type: "OrderPlaced", data: { id: "1", total: 42 } })
        yield* Topic.publishAll(Orders, [
          { topic: "orders/2", type: "OrderPlaced", data: { id: "2", total: 0 } },
          { topic: "orders/1", type: "OrderShipped", data: { id: "1", at } }
        ])
        const received = yield* Fiber.join(consumer)
        const summary = received.map((m) => {
          if (m._tag === "Undecodable") return `undecodable ${m.message}`
          switch (m.type) {
            case "OrderPlaced":
              return `${m.topic} placed ${m.data.id} ${m.data.total.toFixed(2)}`
            case "OrderShipped":
              return `${m.topic} shipped ${m.data.id} ${m.data.at.toISOString()}`
          }
        })
        assert.deepStrictEqual(summary, [
          "orders/1 placed 1 42.00",
          "orders/2 placed 2 0.00",
          "orders/1 shipped 1 2026-12-01T10:00:00.000Z"
        ])
        // the wire form: the type, and the payload's JSON encoded with its schema
        const page = yield* log.read(0, { limit: 10 })
        assert.deepStrictEqual(page.events.map((e) => [e.type, e.data]), [
          ["OrderPlaced", `{"id":"1","total":42}`],
          ["OrderPlaced", `{"id":"2","total":0}`],
          ["OrderShipped", `{"id":"1","at":"2026-12-01T10:00:00.000Z"}`]
        ])
      })))

  it.scoped("a payload that does not encode is a PublishError InvalidData and nothing of the batch is appended", () =>
    withBus((log) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Topic.publishAll(Orders, [
          { topic: "orders/1", type: "OrderPlaced", data: { id: "1", total: 1 } },
          { topic: "orders/1", type: "OrderPlaced", data: { id: "1", total: -1 } }
        ]))
        assert.strictEqual(error._tag, "PublishError")
        assert.strictEqual(error.reason, "InvalidData")
        assert.strictEqual(error.index, 1)
        assert.include(error.message, "(event 1)")
        assert.include(error.message, "non-negative")
        assert.strictEqual((yield* log.head).seq, 0)
      })))

  it.scoped("refuses, at compile time and with typed errors at run time, a wrong payload, type or topic", () =>
    withBus((log) =>
      Effect.gen(function*() {
        const refused = <A, R>(effect: Effect.Effect<A, EventBus.PublishError, R>) =>
          Effect.map(Effect.flip(effect), (e) => `${e.reason}: ${e.message}`)
        const results = [
          // @ts-expect-error total must be a number
          yield* refused(Topic.publish(Orders, { topic: "orders/1", type: "OrderPlaced", data: { id: "1", total: "42" } })),
          // @ts-expect-error an OrderShipped payload needs `at`
          yield* refused(Topic.publish(Orders, { topic: "orders/1", type: "OrderShipped", data: { id: "1" } })),
          // @ts-expect-error OrderCancelled is not a type of Orders
          yield* refused(Topic.publish(Orders, { topic: "orders/1", type: "OrderCancelled", data: { id: "1" } })),
          // @ts-expect-error a pattern ending in * needs a topic
          yield* refused(Topic.publish(Orders, { type: "OrderPlaced", data: { id: "1", total: 1 } })),
          yield* refused(Topic.publish(Orders, { topic: "invoices/1", type: "OrderPlaced", data: { id: "1", total: 1 } })),
          // @ts-expect-error a fixed pattern accepts only itself as the topic
          yield* refused(Topic.publish(Clock, { topic: "calendar", type: "tick", data: { n: 1 } })),
          // @ts-expect-error n must be a number
          yield* refused(Topic.publish(Clock, { type: "tick", data: { n: "1" } }))
        ]
        assert.deepStrictEqual(results.map((r) => r.split(":")[0]), [
          "InvalidData",
          "InvalidData",
          "InvalidType",
          "InvalidTopic",
          "InvalidTopic",
          "InvalidTopic",
          "InvalidData"
        ])
        assert.include(results[4]!, "does not match the pattern orders/*")
        assert.strictEqual((yield* log.head).seq, 0)
        // the fixed pattern is the default topic
        const event = yield* Topic.publish(Clock, { type: "tick", data: { n: 1 } })
        assert.strictEqual(event.topic, "clock")
      })))

  it.scoped("an event that does not decode comes out as an Undecodable value, is counted, and the subscription carries on", () =>
    withBus(() =>
      Effect.gen(function*() {
        const bus = yield* EventBus.EventBus
        const unknownBefore = yield* undecodable("UnknownType")
        const invalidBefore = yield* undecodable("InvalidPayload")
        const sub = yield* Topic.subscribe(Orders)
        yield* bus.publishAll([
          { topic: "orders/1", type: "OrderRefunded", data: "{}" },
          { topic: "orders/1", type: "OrderPlaced", data: "not json" },
          { topic: "orders/1", type: "OrderPlaced", data: `{"id":"1","total":-5}` },
          { topic: "orders/1", type: "OrderPlaced", data: `{"id":"1","total":5}` }
        ])
        const received = yield* take(sub.events, 4)
        assert.deepStrictEqual(received.map((m) => m._tag === "Undecodable" ? m.reason : m.type), [
          "UnknownType",
          "InvalidPayload",
          "InvalidPayload",
          "OrderPlaced"
        ])
        const first = received[0]!
        assert.isTrue(first._tag === "Undecodable" && first.event?.id.seq === 1 && first.data === "{}")
        assert.strictEqual((yield* undecodable("UnknownType")) - unknownBefore, 1)
        assert.strictEqual((yield* undecodable("InvalidPayload")) - invalidBefore, 2)
        assert.strictEqual((yield* bus.stats).subscribers, 1, "still subscribed")
      })))

  it.scoped("with onUndecodable: \"fail\" the stream emits what decoded, then fails with the Undecodable", () =>
    withBus(() =>
      Effect.gen(function*() {
        const bus = yield* EventBus.EventBus
        const orders = yield* Topic.stream(Orders, { onUndecodable: "fail" })
        const seen: Array<string> = []
        const consumer = yield* Effect.fork(Stream.runForEach(orders, (m) => Effect.sync(() => seen.push(m.data.id))))
        yield* bus.publishAll([
          { topic: "orders/1", type: "OrderPlaced", data: `{"id":"1","total":5}` },
          { topic: "orders/1", type: "OrderPlaced", data: `{"id":"1"}` },
          { topic: "orders/1", type: "OrderPlaced", data: `{"id":"2","total":5}` }
        ])
        const error = yield* Effect.flip(Fiber.join(consumer))
        assert.deepStrictEqual(seen, ["1"])
        assert.strictEqual(error._tag, "Undecodable")
        assert.strictEqual(error.reason, "InvalidPayload")
        assert.strictEqual(error.event?.id.seq, 2)
      })))

  it.scoped("resumes after a cursor and reports the outcome; an invalid pattern refuses publish and subscribe", () =>
    withBus(() =>
      Effect.gen(function*() {
        const first = yield* Topic.publish(Clock, { type: "tick", data: { n: 1 } })
        yield* Topic.publish(Clock, { type: "tick", data: { n: 2 } })
        const sub = yield* Topic.subscribe(Clock, { after: first.id })
        assert.strictEqual(sub.outcome._tag, "Resumed")
        const [m] = yield* take(sub.events, 1)
        assert.isTrue(m?._tag === "Message" && m.data.n === 2)
        const Bad = Topic.make("bad topic", { x: Schema.String })
        assert.strictEqual((yield* Effect.flip(Topic.publish(Bad, { type: "x", data: "" }))).reason, "InvalidTopic")
        assert.strictEqual((yield* Effect.flip(Topic.subscribe(Bad))).reason, "InvalidTopic")
      })))

  it("decode: the client-side helper for an SSE frame's type and data", () => {
    const ok = Topic.decode(Orders, { type: "OrderShipped", data: `{"id":"7","at":"2026-01-02T03:04:05.000Z"}` })
    assert.isTrue(Either.isRight(ok) && ok.right.type === "OrderShipped" && ok.right.data.at.getUTCFullYear() === 2026)
    const bad = Topic.decode(Orders, { type: "message", data: "{}" })
    assert.isTrue(Either.isLeft(bad) && bad.left.reason === "UnknownType" && bad.left.type === "message")
  })

  it.scoped("a family declared as a union of tagged schemas: the tag is the type, the tagged value the payload", () =>
    withBus((log) =>
      Effect.gen(function*() {
        class Shipped extends Schema.TaggedClass<Shipped>()("Shipped", { id: Schema.String, at: Schema.DateFromString }) {}
        const Placed = Schema.TaggedStruct("Placed", { id: Schema.String, total: Schema.Number })
        const Parcels = Topic.make("parcels", Schema.Union(Placed, Shipped))
        const parcels = yield* Topic.stream(Parcels)
        const at = new Date("2026-12-01T12:00:00.000Z")
        yield* Topic.publishAll(Parcels, [
          { data: Placed.make({ id: "p1", total: 3 }) },
          { type: "Shipped", data: new Shipped({ id: "p1", at }) }
        ])
        const [placed, shipped] = yield* take(parcels, 2)
        assert.isTrue(placed?._tag === "Message" && placed.type === "Placed" && placed.data.total === 3)
        assert.isTrue(shipped?._tag === "Message" && shipped.type === "Shipped" && shipped.data instanceof Shipped)
        assert.isTrue(shipped?._tag === "Message" && shipped.type === "Shipped" && shipped.data.at.getTime() === at.getTime())
        const page = yield* log.read(0, { limit: 10 })
        assert.deepStrictEqual(page.events.map((e) => [e.type, e.data]), [
          ["Placed", `{"_tag":"Placed","id":"p1","total":3}`],
          ["Shipped", `{"id":"p1","at":"2026-12-01T12:00:00.000Z","_tag":"Shipped"}`]
        ])
        const Single = Topic.make("single", Placed)
        assert.deepStrictEqual(Object.keys(Single.events), ["Placed"])
        const refused = yield* Effect.flip(
          // @ts-expect-error a Placed payload needs a total
          Topic.publish(Parcels, { data: { _tag: "Placed", id: "p2" } })
        )
        assert.strictEqual(refused.reason, "InvalidData")
        // @ts-expect-error the type must be the payload's tag
        const mismatch = yield* Effect.flip(Topic.publish(Parcels, { type: "Shipped", data: Placed.make({ id: "p3", total: 1 }) }))
        assert.strictEqual(mismatch.reason, "InvalidData")
        assert.strictEqual((yield* log.head).seq, 2)
      })))
})
