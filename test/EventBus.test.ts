import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as fc from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Event from "../src/Event.js"
import * as EventBus from "../src/EventBus.js"
import * as EventLog from "../src/EventLog.js"
import { inspectSubscriber } from "../src/internal/eventBus.js"
import * as Sse from "../src/Sse.js"
import * as Delivery from "./utils/DeliveryChecker.js"
import { seeded } from "./utils/random.js"

type Bus = EventBus.EventBus["Type"]
type Log = EventLog.EventLog["Type"]

/**
 * A bus over a fresh memory log, living in the test's scope. Built inside the test, so its stall
 * sweep runs on the test's clock (the TestClock under `it.effect` / `it.scoped`).
 */
const makeBus = (options?: EventBus.Options & { readonly log?: EventLog.MemoryOptions | undefined }) =>
  Effect.gen(function*() {
    const log = yield* EventLog.makeMemory(options?.log)
    const bus = yield* EventBus.make(options).pipe(Effect.provideService(EventLog.EventLog, log))
    return { bus, log }
  })

const inputs = (n: number, topic = "t", from = 0): Array<Event.EventInput> =>
  Array.from({ length: n }, (_, i) => ({ topic, data: `e${from + i}` }))

const collect = <E>(stream: Stream.Stream<Event.Event, E>) => Effect.map(Stream.runCollect(stream), Chunk.toArray)

const seqs = (events: ReadonlyArray<Event.Event>) => events.map((e) => e.id.seq)

/**
 * A bus on the real memory log whose every read first publishes `perRead` live events on topic `t`
 * (from data index 1,000 on): live traffic that arrives while a resume reads its replay.
 */
const busPublishingOnRead = (perRead: number, options?: EventBus.Options) =>
  Effect.gen(function*() {
    const inner = yield* EventLog.makeMemory()
    let bus: Bus | undefined
    const log = EventLog.EventLog.of({
      ...inner,
      read: (after, o) => Effect.zipRight(Effect.orDie(bus!.publishAll(inputs(perRead, "t", 1_000))), inner.read(after, o))
    })
    bus = yield* EventBus.make(options).pipe(Effect.provideService(EventLog.EventLog, log))
    return bus
  })

const range = (from: number, to: number): Array<number> => Array.from({ length: to - from + 1 }, (_, i) => from + i)

/** The whole retained log, in order. */
const readLog = (log: Log) =>
  Effect.gen(function*() {
    const head = yield* log.head
    const earliest = yield* log.earliest
    const page = yield* log.read(earliest - 1, { limit: head.seq + 1 })
    return page.events
  })

const frameBytes = (events: ReadonlyArray<Event.Event>) => events.reduce((n, e) => n + Sse.encodeEvent(e).byteLength, 0)

/** Lets every other runnable fiber run for a while. */
const settle = Effect.repeatN(Effect.yieldNow(), 20)

/**
 * One consumer against a publisher, both driven by `seed`: the publisher appends `total` events in
 * random batches with random pauses; the consumer connects, is disconnected at random points (before
 * registration, between registration and replay, mid-stream, at overflow) and reconnects, many times.
 *
 * - `resume`: reconnects with `subscribe({ after: lastIdSeen })`, the way sluice is meant to be used.
 * - `read-then-live` (the negative control): reads the log after the last id with `EventLog.read`, then
 *   subscribes live without `after`; a publish between the two is never seen.
 */
const simulate = (seed: number, total: number, strategy: "resume" | "read-then-live") =>
  Effect.gen(function*() {
    const rng = seeded(seed)
    const inner = yield* EventLog.makeMemory({ maxEvents: total + 100 })
    let replaying = 0
    let interruptedInReplay = 0
    // The real memory log. A read first lets other fibers run, so publishes and disconnects land
    // between a subscriber's registration and its replay.
    const log = EventLog.EventLog.of({
      ...inner,
      read: (after, options) =>
        Effect.suspend(() => {
          replaying++
          return Effect.repeatN(Effect.yieldNow(), rng.int(4))
        }).pipe(
          Effect.onInterrupt(() => Effect.sync(() => interruptedInReplay++)),
          Effect.ensuring(Effect.sync(() => replaying--)),
          Effect.zipRight(inner.read(after, options))
        )
    })
    const bus = yield* EventBus.make({ maxReplay: total + 1 }).pipe(Effect.provideService(EventLog.EventLog, log))
    const epoch = yield* log.epoch

    let published = 0
    const done = yield* Deferred.make<void>()
    yield* Effect.forkScoped(Effect.gen(function*() {
      while (published < total) {
        const n = Math.min(total - published, 1 + rng.int(25))
        yield* bus.publishAll(inputs(n, `t/${rng.int(3)}`, published))
        published += n
        yield* Effect.repeatN(Effect.yieldNow(), rng.int(3))
      }
      yield* Deferred.succeed(done, undefined)
    }))

    const received: Array<Event.Event> = []
    let last: Event.EventId = { epoch, seq: 0 }
    const consume = (events: Stream.Stream<Event.Event>, take: number) =>
      Stream.runForEach(
        events.pipe(Stream.take(take), Stream.takeUntil((e) => e.id.seq === total)),
        (e) =>
          Effect.sync(() => {
            received.push(e)
            last = e.id
          })
      )

    const session = (maxEvents: number, take: number) =>
      Effect.scoped(
        strategy === "resume"
          ? Effect.flatMap(bus.subscribe({ after: last, maxEvents }), (sub) => consume(sub.events, take))
          : Effect.gen(function*() {
            const page = yield* log.read(last.seq, { limit: total + 1 })
            for (const e of page.events) {
              received.push(e)
              last = e.id
            }
            // let the publisher append something before the live subscription starts
            while (published < total && (yield* log.head).seq === page.cursor) yield* Effect.yieldNow()
            const sub = yield* bus.subscribe({ maxEvents })
            // what was published before this subscription never comes live: stop once publishing is over
            yield* consume(sub.events, take).pipe(Effect.raceFirst(Effect.zipRight(Deferred.await(done), settle)))
          })
      )

    let sessions = 0
    let sessionsWhilePublishing = 0
    while (published < total || last.seq < total) {
      sessions++
      if (published < total) sessionsWhilePublishing++
      const maxEvents = 1 + rng.int(rng.next() < 0.3 ? 20 : 500)
      const take = 1 + rng.int(300)
      const fiber = yield* Effect.fork(session(maxEvents, take))
      const plan = rng.int(4)
      if (plan === 0) {
        // disconnect after a random number of steps: before registering, while replaying, while live
        yield* Effect.repeatN(Effect.yieldNow(), rng.int(40))
        yield* Fiber.interrupt(fiber)
      } else if (plan === 1) {
        // disconnect while the replay is being read, if it gets there
        for (let i = 0; i < 50 && replaying === 0 && fiber.unsafePoll() === null; i++) yield* Effect.yieldNow()
        yield* Fiber.interrupt(fiber)
      } else {
        // read until the stream ends: overflow, the random take, or the end of the log
        yield* Fiber.join(fiber)
      }
    }
    const stats = yield* bus.stats
    assert.strictEqual(stats.subscribers, 0)
    return { received, logged: yield* readLog(inner), sessions, sessionsWhilePublishing, interruptedInReplay, stats }
  })

describe("EventBus", () => {
  describe("publish", () => {
    it.scoped("appends to the log and fans out before it completes", () =>
      Effect.gen(function*() {
        const { bus, log } = yield* makeBus()
        const sub = yield* bus.subscribe()
        const event = yield* bus.publish({ topic: "orders/1", data: "{\"n\":1}" })
        assert.deepStrictEqual(event.id, yield* log.head)
        assert.strictEqual(event.type, "message")
        assert.strictEqual((yield* bus.stats).bufferedEvents, 1, "buffered before publish returned")
        const [received] = yield* collect(Stream.take(sub.events, 1))
        assert.strictEqual(received, event)
      }))

    const refused: ReadonlyArray<[string, EventBus.PublishError["reason"], Event.EventInput]> = [
      ["an empty topic", "InvalidTopic", { topic: "", data: "x" }],
      ["a topic with a space", "InvalidTopic", { topic: "a b", data: "x" }],
      ["a topic with a star", "InvalidTopic", { topic: "a/*", data: "x" }],
      ["a topic with a newline", "InvalidTopic", { topic: "a\nb", data: "x" }],
      ["a 201-character topic", "InvalidTopic", { topic: "t".repeat(201), data: "x" }],
      ["a non-string topic", "InvalidTopic", { topic: 7 as unknown as string, data: "x" }],
      ["the reserved type reset", "InvalidType", { topic: "t", type: "reset", data: "x" }],
      ["the reserved type end", "InvalidType", { topic: "t", type: "end", data: "x" }],
      ["an empty type", "InvalidType", { topic: "t", type: "", data: "x" }],
      ["a type with a newline", "InvalidType", { topic: "t", type: "a\ndata: x", data: "x" }],
      ["a lone high surrogate", "InvalidData", { topic: "t", data: "a\uD800b" }],
      ["a lone low surrogate", "InvalidData", { topic: "t", data: "\uDC00" }],
      ["non-string data", "InvalidData", { topic: "t", data: null as unknown as string }],
      ["data over maxEventBytes", "TooLarge", { topic: "t", data: "x".repeat(1_001) }],
      ["data over maxEventBytes in UTF-8", "TooLarge", { topic: "t", data: "é".repeat(501) }],
      ["an empty idempotency key", "InvalidIdempotencyKey", { topic: "t", data: "x", idempotencyKey: "" }],
      ["a 201-byte idempotency key", "InvalidIdempotencyKey", { topic: "t", data: "x", idempotencyKey: "k".repeat(201) }],
      ["an idempotency key with a newline", "InvalidIdempotencyKey", { topic: "t", data: "x", idempotencyKey: "a\nb" }]
    ]
    it.effect.each(refused)("refuses %s with a typed PublishError and appends nothing", ([, reason, input]) =>
      Effect.gen(function*() {
        const { bus, log } = yield* makeBus({ maxEventBytes: 1_000 })
        yield* bus.publish({ topic: "t", data: "before" })
        const error = yield* Effect.flip(bus.publish(input))
        assert.strictEqual(error._tag, "PublishError")
        assert.strictEqual(error.reason, reason)
        assert.strictEqual(error.index, 0)
        assert.isAbove(error.message.length, 0)
        assert.strictEqual((yield* log.head).seq, 1)
        assert.strictEqual((yield* bus.stats).published, 1)
      }).pipe(Effect.scoped))

    it.scoped("accepts data of exactly maxEventBytes UTF-8 bytes", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus({ maxEventBytes: 1_000 })
        yield* bus.publish({ topic: "t", data: "x".repeat(1_000) })
        yield* bus.publish({ topic: "t", data: "é".repeat(500) })
        yield* bus.publish({ topic: "t", data: "🎉".repeat(250) })
        assert.strictEqual((yield* bus.stats).published, 3)
      }))

    it.scoped("publishAll is all or none and reports the offending index", () =>
      Effect.gen(function*() {
        const { bus, log } = yield* makeBus()
        const sub = yield* bus.subscribe()
        const error = yield* Effect.flip(
          bus.publishAll([{ topic: "a", data: "1" }, { topic: "b", data: "2" }, { topic: "c", type: "end", data: "3" }])
        )
        assert.strictEqual(error.reason, "InvalidType")
        assert.strictEqual(error.index, 2)
        assert.include(error.message, "event 2")
        assert.strictEqual((yield* log.head).seq, 0)
        assert.strictEqual((yield* bus.stats).bufferedEvents, 0, "no subscriber saw any of it")

        const stored = yield* bus.publishAll([{ topic: "a", data: "1" }, { topic: "b", type: "x", data: "2" }])
        assert.deepStrictEqual(seqs(stored), [1, 2])
        assert.deepStrictEqual(yield* collect(Stream.take(sub.events, 2)), stored)
      }))

    it.scoped("a publish repeated with its idempotency key returns the first event and fans out once", () =>
      Effect.gen(function*() {
        const { bus, log } = yield* makeBus()
        const sub = yield* bus.subscribe()
        const first = yield* bus.publish({ topic: "t", data: "x", idempotencyKey: "retry-1" })
        const again = yield* bus.publish({ topic: "t", data: "x", idempotencyKey: "retry-1" })
        assert.strictEqual(again, first)
        assert.strictEqual((yield* log.head).seq, 1)
        const [events] = yield* sub.takeAll
        assert.deepStrictEqual(Chunk.toArray(events), [first])
        assert.strictEqual((yield* bus.stats).published, 1)
      }))

    it.scoped("publishAll takes any iterable, and an empty batch appends nothing", () =>
      Effect.gen(function*() {
        const { bus, log } = yield* makeBus()
        assert.deepStrictEqual(yield* bus.publishAll([]), [])
        const gen = function*() {
          yield { topic: "a", data: "1" }
          yield { topic: "a", data: "2" }
        }
        const stored = yield* bus.publishAll(gen())
        assert.deepStrictEqual(stored.map((e) => e.data), ["1", "2"])
        assert.strictEqual((yield* log.head).seq, 2)
      }))
  })

  describe("subscribe", () => {
    it.scoped("an event published from inside a filter during a fan-out reaches everyone after the batch, in log order", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus()
        let published = false
        const publisher = yield* bus.subscribe({
          filter: (event) => {
            if (event.data === "trigger" && !published) {
              published = true
              Effect.runSync(bus.publish({ topic: "t", data: "nested" }))
            }
            return true
          }
        })
        const everyTopic = yield* bus.subscribe()
        const onTopic = yield* bus.subscribe({ topics: ["t"] })
        yield* bus.publishAll([{ topic: "t", data: "trigger" }, { topic: "t", data: "after" }])
        for (const sub of [publisher, everyTopic, onTopic]) {
          const [events] = yield* sub.takeAll
          assert.deepStrictEqual([...events].map((e) => e.data), ["trigger", "after", "nested"])
          assert.deepStrictEqual(seqs([...events]), [1, 2, 3])
        }
      }))

    it.scoped("refuses an invalid topic pattern with a SubscribeError and registers nothing", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus()
        for (const topic of ["", "a b", "a*b", "**", "a\n"]) {
          const error = yield* Effect.flip(bus.subscribe({ topics: ["ok", topic] }))
          assert.strictEqual(error._tag, "SubscribeError")
          assert.strictEqual(error.reason, "InvalidTopic")
        }
        const streamError = yield* Effect.flip(Stream.runDrain(bus.streamLazy({ topics: ["a b"] })))
        assert.strictEqual(streamError.reason, "InvalidTopic")
        assert.strictEqual((yield* bus.stats).subscribers, 0)
      }))

    it.scoped("refuses a limit that is not positive with a SubscribeError InvalidOption and registers nothing", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus()
        const bad: ReadonlyArray<EventBus.SubscribeOptions> = [
          { maxEvents: 0 },
          { maxBytes: -1 },
          { maxReplay: Number.NaN },
          { stallTimeout: "0 millis" },
          { stallTimeout: "soon" as never }
        ]
        for (const options of bad) {
          const error = yield* Effect.flip(bus.subscribe({ topics: ["t"], ...options }))
          assert.strictEqual(error._tag, "SubscribeError")
          assert.strictEqual(error.reason, "InvalidOption", JSON.stringify(options))
          assert.isAbove(error.message.length, 0)
        }
        assert.strictEqual((yield* bus.stats).subscribers, 0)
      }))

    it.scoped("fans out to 3 subscribers × 10,000 events, each in exactly the log's order", () =>
      Effect.gen(function*() {
        const { bus, log } = yield* makeBus({ maxEvents: 10_000, log: { maxEvents: 20_000 } })
        const subs = yield* Effect.all([bus.subscribe(), bus.subscribe(), bus.subscribe()])
        const consumers = yield* Effect.forEach(subs, (sub) => Effect.fork(collect(Stream.take(sub.events, 10_000))))
        for (let i = 0; i < 10_000; i++) {
          yield* bus.publish({ topic: `t/${i % 7}`, data: String(i) })
          if (i % 97 === 0) yield* Effect.yieldNow()
        }
        const logged = yield* readLog(log)
        assert.strictEqual(logged.length, 10_000)
        for (const consumer of consumers) {
          const received = yield* Fiber.join(consumer)
          assert.strictEqual(received.length, 10_000)
          assert.isTrue(received.every((e, i) => e === logged[i]), "same events, same order")
        }
        const stats = yield* bus.stats
        assert.strictEqual(stats.ends.overflow, 0)
        assert.strictEqual(stats.delivered, 30_000)
      }))

    it.scoped("takeAll hands over the replay, then everything buffered, then done once ended and drained", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus()
        const [first] = yield* bus.publishAll(inputs(2))
        const sub = yield* bus.subscribe({ after: first!.id, maxEvents: 3 })
        const waiting = yield* Effect.fork(Effect.zip(sub.takeAll, sub.takeAll))
        yield* settle
        yield* bus.publishAll(inputs(2, "t", 2))
        const [replay, live] = yield* Fiber.join(waiting)
        assert.deepStrictEqual(Chunk.toArray(replay[0]).map((e) => e.data), ["e1"])
        assert.isFalse(replay[1])
        assert.deepStrictEqual(Chunk.toArray(live[0]).map((e) => e.data), ["e2", "e3"])
        assert.isFalse(live[1])
        // Four more into a buffer of three: the fourth overflows it; the three it holds still come out.
        yield* bus.publishAll(inputs(4, "t", 4))
        const [held, done] = yield* sub.takeAll
        assert.deepStrictEqual(Chunk.toArray(held).map((e) => e.data), ["e4", "e5", "e6"])
        assert.isTrue(done)
        assert.strictEqual(yield* sub.ended, "overflow")
        const [after, stillDone] = yield* sub.takeAll
        assert.strictEqual(Chunk.size(after), 0)
        assert.isTrue(stillDone)
      }))

    it.scoped("takeAll across 100 subscribers × 10,000 events delivers every event in log order", () =>
      Effect.gen(function*() {
        const { bus, log } = yield* makeBus({ maxEvents: 10_000, log: { maxEvents: 20_000 } })
        const subs = yield* Effect.forEach(range(1, 100), () => bus.subscribe())
        const drain = (sub: EventBus.Subscription) =>
          Effect.gen(function*() {
            const got: Array<Event.Event> = []
            while (got.length < 10_000) {
              const [chunk] = yield* sub.takeAll
              for (const e of chunk) got.push(e)
            }
            return got
          })
        const consumers = yield* Effect.forEach(subs, (sub) => Effect.fork(drain(sub)))
        for (let i = 0; i < 10_000; i += 64) {
          yield* bus.publishAll(inputs(Math.min(64, 10_000 - i), "t", i))
          yield* Effect.yieldNow()
        }
        const logged = yield* readLog(log)
        for (const consumer of consumers) {
          const received = yield* Fiber.join(consumer)
          assert.strictEqual(received.length, 10_000)
          assert.isTrue(received.every((e, i) => e === logged[i]), "same events, same order")
        }
        assert.strictEqual((yield* bus.stats).ends.overflow, 0)
      }))

    it.scoped("a subscription's members work when taken off it (destructured), and are built once", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus()
        const subscription = yield* bus.subscribe()
        const { end, ended, takeAll } = subscription
        assert.strictEqual(subscription.takeAll, takeAll)
        assert.strictEqual(subscription.events, subscription.events)
        yield* bus.publishAll(inputs(2))
        const [first] = yield* takeAll
        assert.deepStrictEqual(Chunk.toArray(first).map((e) => e.data), ["e0", "e1"])
        yield* end("lifetime")
        assert.strictEqual(yield* ended, "lifetime")
        assert.deepStrictEqual(yield* takeAll, [Chunk.empty(), true])
        const late = yield* bus.subscribe()
        yield* late.end("overflow")
        assert.strictEqual(yield* late.ended, "overflow", "`ended` first asked for after the end completes too")
      }))

    it.scoped("subscribers that share a batch keep their own buffers (drain, hold, overflow mid-batch, filter)", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus()
        const a = yield* bus.subscribe({ maxEvents: 100 })
        const b = yield* bus.subscribe({ maxEvents: 100 })
        const small = yield* bus.subscribe({ maxEvents: 5 })
        const other = yield* bus.subscribe({ topics: ["u"] })
        const first = yield* bus.publishAll(inputs(10))
        assert.strictEqual((yield* bus.stats).bufferedEvents, 10 + 10 + 5)
        const [aFirst] = yield* a.takeAll
        const second = yield* bus.publishAll([...inputs(9, "t", 10), { topic: "u", data: "u" }])
        const [aSecond] = yield* a.takeAll
        const [bAll] = yield* b.takeAll
        assert.deepStrictEqual(Chunk.toArray(aFirst), first, "a's first batch is untouched by b's later pushes")
        assert.deepStrictEqual(Chunk.toArray(aSecond), second)
        assert.deepStrictEqual(Chunk.toArray(bAll), [...first, ...second])
        assert.strictEqual(yield* small.ended, "overflow")
        assert.deepStrictEqual(yield* collect(small.events), first.slice(0, 5))
        const [otherGot] = yield* other.takeAll
        assert.deepStrictEqual(Chunk.toArray(otherGot).map((e) => e.data), ["u"])
        const stats = yield* bus.stats
        assert.strictEqual(stats.bufferedEvents, 0)
        assert.strictEqual(stats.bufferedBytes, 0)
        assert.strictEqual(stats.delivered, 10 + 10 + 20 + 5 + 1)
      }))

    it.scoped("subscribers of one topic set share its filtered batch; predicates, caps and other sets stay their own", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus()
        const ab = yield* bus.subscribe({ topics: ["a", "b/*"] })
        const ba = yield* bus.subscribe({ topics: ["b/*", "a", "a"] })
        const odd = yield* bus.subscribe({ topics: ["a", "b/*"], filter: (e) => Number(e.data) % 2 === 1 })
        const small = yield* bus.subscribe({ topics: ["a", "b/*"], maxEvents: 2 })
        const c = yield* bus.subscribe({ topics: ["c"] })
        const mixed = (from: number) =>
          ["a", "c", "b/1", "z", "b/2", "a"].map((topic, i) => ({ topic, data: String(from + i) }))
        const first = yield* bus.publishAll(mixed(0))
        const wanted = first.filter((e) => e.topic === "a" || e.topic.startsWith("b/"))
        const [abFirst] = yield* ab.takeAll
        const [baFirst] = yield* ba.takeAll
        assert.deepStrictEqual(Chunk.toArray(abFirst), wanted)
        assert.deepStrictEqual(Chunk.toArray(baFirst), wanted)
        assert.strictEqual(Chunk.toArray(abFirst)[0], Chunk.toArray(baFirst)[0])
        assert.deepStrictEqual(Chunk.toArray((yield* odd.takeAll)[0]).map((e) => e.data), ["5"])
        assert.deepStrictEqual(Chunk.toArray((yield* c.takeAll)[0]).map((e) => e.data), ["1"])
        assert.strictEqual(yield* small.ended, "overflow")
        assert.deepStrictEqual(yield* collect(small.events), wanted.slice(0, 2))
        // A batch with nothing for a set leaves its buffers empty; the set still works afterwards.
        yield* bus.publishAll([{ topic: "z", data: "x" }])
        const second = yield* bus.publishAll(mixed(10))
        const [abSecond] = yield* ab.takeAll
        assert.deepStrictEqual(Chunk.toArray(abSecond), second.filter((e) => e.topic === "a" || e.topic.startsWith("b/")))
        yield* ba.end("closed")
        const third = yield* bus.publishAll(mixed(20))
        const [abThird] = yield* ab.takeAll
        assert.deepStrictEqual(Chunk.toArray(abThird), third.filter((e) => e.topic === "a" || e.topic.startsWith("b/")))
        const later = yield* bus.subscribe({ topics: ["a", "b/*"] })
        const fourth = yield* bus.publishAll(mixed(30))
        assert.deepStrictEqual(
          Chunk.toArray((yield* later.takeAll)[0]),
          fourth.filter((e) => e.topic === "a" || e.topic.startsWith("b/"))
        )
      }))

    it.scoped("a topic set's shared matcher is released with its last subscriber", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus()
        const probe = yield* bus.subscribe()
        const matchers = (inspectSubscriber(probe).hub as unknown as { readonly matchers: Map<string, unknown> }).matchers
        const scope = yield* Scope.make()
        for (let i = 0; i < 50; i++) {
          yield* Scope.extend(bus.subscribe({ topics: [`t/${i}`, "shared/*"] }), scope)
          yield* Scope.extend(bus.subscribe({ topics: ["shared/*", `t/${i}`] }), scope)
        }
        assert.strictEqual(matchers.size, 50)
        yield* Scope.close(scope, Exit.void)
        assert.strictEqual(matchers.size, 0)
        // A subscription refused for its options never takes a matcher.
        const failing = yield* Effect.flip(bus.subscribe({ topics: ["x"], maxEvents: -1 }))
        assert.strictEqual(failing.reason, "InvalidOption")
        assert.strictEqual(matchers.size, 0)
      }))

    it.scoped("filtered-out events never occupy a buffer (topics, prefixes and the filter predicate)", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus()
        const exact = yield* bus.subscribe({ topics: ["a/1"], maxEvents: 2 })
        const prefix = yield* bus.subscribe({ topics: ["a/*"], maxEvents: 2 })
        const predicate = yield* bus.subscribe({ filter: (e) => e.data === "keep", maxEvents: 2 })
        const both = yield* bus.subscribe({ topics: ["a/*"], filter: (e) => e.type === "x", maxEvents: 2 })
        for (let i = 0; i < 1_000; i++) {
          yield* bus.publishAll([
            { topic: "b/1", data: "nope" },
            { topic: "a", data: "nope" },
            { topic: "ab/1", data: "nope" },
            { topic: "a/2", type: "y", data: "nope" }
          ])
        }
        // 4,000 events, caps of 2: only `prefix` matched anything (the 1,000 `a/2` events) and overflowed
        assert.strictEqual(yield* prefix.ended, "overflow")
        for (const sub of [exact, predicate, both]) {
          assert.strictEqual(inspectSubscriber(sub).buffer.length, 0)
          assert.strictEqual(inspectSubscriber(sub).endReason, undefined)
        }
        assert.strictEqual((yield* bus.stats).bufferedEvents, 2, "the overflowed prefix subscriber's two events")

        yield* bus.publishAll([
          { topic: "a/1", type: "x", data: "keep" },
          { topic: "c", data: "keep" }
        ])
        assert.deepStrictEqual((yield* collect(Stream.take(exact.events, 1))).map((e) => e.topic), ["a/1"])
        assert.deepStrictEqual((yield* collect(Stream.take(predicate.events, 2))).map((e) => e.topic), ["a/1", "c"])
        assert.deepStrictEqual((yield* collect(Stream.take(both.events, 1))).map((e) => e.topic), ["a/1"])
        const stats = yield* bus.stats
        assert.strictEqual(stats.ends.overflow, 1)
      }))

    it.scoped("a prefix subscriber with a small buffer is not filled by other topics", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus()
        const sub = yield* bus.subscribe({ topics: ["orders/*", "exact"], maxEvents: 3 })
        for (let i = 0; i < 5_000; i++) yield* bus.publish({ topic: i % 2 === 0 ? "users/1" : "orders", data: "x" })
        yield* bus.publishAll([
          { topic: "orders/1", data: "1" },
          { topic: "exact", data: "2" },
          { topic: "orders/", data: "3" }
        ])
        const stats = yield* bus.stats
        assert.strictEqual(stats.bufferedEvents, 3)
        assert.strictEqual(stats.ends.overflow, 0)
        assert.deepStrictEqual((yield* collect(Stream.take(sub.events, 3))).map((e) => e.data), ["1", "2", "3"])
      }))

    it.scoped("a throwing filter ends only its own subscriber", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus()
        const bad = yield* bus.subscribe({
          filter: (e) => {
            if (e.data === "boom") throw new Error("boom")
            return true
          }
        })
        const good = yield* bus.subscribe()
        yield* bus.publishAll(inputs(2))
        yield* bus.publish({ topic: "t", data: "boom" })
        yield* bus.publish({ topic: "t", data: "after" })
        assert.strictEqual(yield* bad.ended, "closed")
        assert.deepStrictEqual((yield* collect(bad.events)).map((e) => e.data), ["e0", "e1"])
        assert.deepStrictEqual((yield* collect(Stream.take(good.events, 4))).map((e) => e.data), ["e0", "e1", "boom", "after"])
      }))
  })

  describe("bounded buffers", () => {
    it.scoped("a subscriber that never reads ends with overflow; the publisher and the others never wait for it", () =>
      Effect.gen(function*() {
        const maxEvents = 1_000
        const maxBytes = 1024 * 1024
        const { bus, log } = yield* makeBus({ log: { maxEvents: 200_000 } })
        const idle = yield* bus.subscribe({ maxEvents, maxBytes })
        const idleBuffer = inspectSubscriber(idle)
        const readers = yield* Effect.all([
          bus.subscribe({ maxEvents: 20_000 }),
          bus.subscribe({ maxEvents: 20_000, topics: ["t/*"] })
        ])
        const counts = [0, 0]
        const lastSeq = [0, 0]
        let inOrder = true
        const readerFibers = yield* Effect.forEach(readers, (reader, r) =>
          Stream.runForEachChunk(
            Stream.take(reader.events, 100_000),
            (chunk) =>
              Effect.sync(() => {
                for (const e of chunk) {
                  if (e.id.seq !== lastSeq[r]! + 1) inOrder = false
                  lastSeq[r] = e.id.seq
                }
                counts[r]! += chunk.length
              })
          ).pipe(Effect.fork))

        let maxHeldEvents = 0
        let maxHeldBytes = 0
        for (let batch = 0; batch < 100; batch++) {
          yield* bus.publishAll(inputs(1_000, `t/${batch}`, batch * 1_000))
          maxHeldEvents = Math.max(maxHeldEvents, idleBuffer.buffer.length)
          maxHeldBytes = Math.max(maxHeldBytes, idleBuffer.bytes)
          yield* Effect.yieldNow()
        }
        // publishing 100,000 events completed while the idle subscriber still exists and never read
        assert.strictEqual((yield* log.head).seq, 100_000)
        assert.strictEqual(idleBuffer.endReason, "overflow")
        assert.strictEqual(yield* idle.ended, "overflow")
        assert.isAtMost(maxHeldEvents, maxEvents)
        assert.isAtMost(maxHeldBytes, maxBytes)

        yield* Effect.forEach(readerFibers, Fiber.join)
        assert.deepStrictEqual(counts, [100_000, 100_000])
        assert.isTrue(inOrder)

        const stats = yield* bus.stats
        assert.strictEqual(stats.subscribers, 3)
        assert.strictEqual(stats.bufferedEvents, maxEvents, "only the idle subscriber's capped buffer is held")
        assert.isAtMost(stats.bufferedBytes, maxBytes)
        assert.strictEqual(stats.ends.overflow, 1)

        // what it held flushes, then its stream ends: exactly the first maxEvents events of the log
        const flushed = yield* collect(idle.events)
        assert.deepStrictEqual(seqs(flushed), range(1, maxEvents))
        assert.strictEqual(stats.bufferedBytes, frameBytes(flushed))
        assert.strictEqual((yield* bus.stats).bufferedEvents, 0)
      }))

    it.scoped("the byte cap ends a subscriber on a few large events", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus({ maxBytes: 10_000 })
        const sub = yield* bus.subscribe()
        const large = (i: number) => ({ topic: "t", data: String(i).repeat(3_000) })
        const stored = yield* bus.publishAll([large(1), large(2), large(3)])
        assert.strictEqual(inspectSubscriber(sub).endReason, undefined)
        assert.isAtMost(frameBytes(stored), 10_000)
        yield* bus.publish(large(4))
        assert.strictEqual(yield* sub.ended, "overflow")
        const stats = yield* bus.stats
        assert.strictEqual(stats.bufferedEvents, 3)
        assert.strictEqual(stats.bufferedBytes, frameBytes(stored))
        assert.deepStrictEqual(yield* collect(sub.events), stored)
      }))

    it.scoped("the event-count cap ends a subscriber on many small events", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus({ maxEvents: 5 })
        const sub = yield* bus.subscribe()
        const big = yield* bus.subscribe({ maxEvents: 6 })
        const stored = yield* bus.publishAll(inputs(5))
        assert.strictEqual(inspectSubscriber(sub).endReason, undefined)
        yield* bus.publish({ topic: "t", data: "6" })
        assert.strictEqual(yield* sub.ended, "overflow")
        assert.strictEqual(inspectSubscriber(big).endReason, undefined, "a per-subscription cap overrides the bus's")
        assert.deepStrictEqual(yield* collect(sub.events), stored)
        assert.strictEqual(inspectSubscriber(sub).bytes, 0)
      }))

    it.scoped("a per-subscription byte cap overrides the bus's", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus()
        const sub = yield* bus.subscribe({ maxBytes: 200 })
        yield* bus.publish({ topic: "t", data: "x".repeat(150) })
        yield* bus.publish({ topic: "t", data: "x".repeat(150) })
        assert.strictEqual(yield* sub.ended, "overflow")
        assert.strictEqual((yield* collect(sub.events)).length, 1)
      }))
  })

  describe("stalled subscribers", () => {
    it.scoped("a non-draining subscriber is ended as stalled; a slow but draining one is not", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus({ stallTimeout: "5 seconds" })
        const stuck = yield* bus.subscribe()
        const slow = yield* bus.subscribe()
        const idle = yield* bus.subscribe({ topics: ["nothing"] })
        let slowReceived = 0
        const slowFiber = yield* Stream.runForEachChunk(slow.events, (chunk) =>
          Effect.sync(() => {
            slowReceived += chunk.length
          }).pipe(Effect.zipRight(Effect.sleep("3 seconds")))).pipe(Effect.fork)
        const publisher = yield* bus.publish({ topic: "t", data: "tick" }).pipe(
          Effect.zipRight(Effect.sleep("1 second")),
          Effect.forever,
          Effect.fork
        )
        for (let i = 0; i < 120; i++) yield* TestClock.adjust("500 millis")
        assert.strictEqual(yield* stuck.ended, "stalled")
        assert.strictEqual(inspectSubscriber(slow).endReason, undefined)
        assert.strictEqual(inspectSubscriber(idle).endReason, undefined, "an empty buffer never stalls")
        assert.isTrue(Option.isNone(yield* Fiber.poll(slowFiber)))
        assert.isAtLeast(slowReceived, 40)
        const stats = yield* bus.stats
        assert.strictEqual(stats.ends.stalled, 1)
        // what the stalled subscriber held is still delivered
        assert.isAtLeast((yield* collect(stuck.events)).length, 1)
        yield* Fiber.interrupt(publisher)
      }))

    it.scoped("stalls are detected within stallTimeout plus one sweep", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus({ stallTimeout: "10 seconds" })
        const sub = yield* bus.subscribe()
        yield* bus.publish({ topic: "t", data: "x" })
        yield* TestClock.adjust("9 seconds")
        assert.strictEqual(inspectSubscriber(sub).endReason, undefined)
        yield* TestClock.adjust("3 seconds")
        assert.strictEqual(inspectSubscriber(sub).endReason, "stalled")
      }))
  })

  describe("log resets", () => {
    it.scoped("a reset of the log's follower ends every subscriber with log-reset; resumes then see the new epoch", () =>
      Effect.gen(function*() {
        const memory = yield* EventLog.makeMemory({ epoch: "old" })
        let reset: ((head: Event.EventId) => void) | undefined
        const log: Log = { ...memory, follow: (listener, onReset) => Effect.tap(memory.follow(listener), () => void (reset = onReset)) }
        const bus = yield* EventBus.make().pipe(Effect.provideService(EventLog.EventLog, log))
        const stored = yield* bus.publish({ topic: "t", data: "x" })
        const a = yield* bus.subscribe()
        const b = yield* bus.subscribe({ topics: ["t"] })
        reset!({ epoch: "new", seq: 7 })
        assert.strictEqual(yield* a.ended, "log-reset")
        assert.strictEqual(yield* b.ended, "log-reset")
        const again = yield* bus.subscribe({ after: stored.id })
        assert.deepStrictEqual(again.outcome.head, { epoch: "new", seq: 7 })
        assert.strictEqual(again.outcome._tag === "Reset" && again.outcome.reason, "epoch-mismatch")
        assert.strictEqual((yield* bus.stats).ends["log-reset"], 2)
      }))
  })

  describe("a fan-out behind the log (a shared log)", () => {
    it.scoped("a cursor ahead of this node's fan-out gets only later events, even when the fan-out catches up during the resume", () =>
      Effect.gen(function*() {
        // The follower's batches wait in `pending` until the bus asks the log for its head, as a
        // node's tail reader can deliver while a resume is in flight.
        const memory = yield* EventLog.makeMemory()
        const pending: Array<ReadonlyArray<Event.Event>> = []
        let deliver: (events: ReadonlyArray<Event.Event>) => void = () => {}
        const flush = () => pending.splice(0).forEach((batch) => deliver(batch))
        const log: Log = {
          ...memory,
          head: Effect.zipRight(Effect.sync(flush), memory.head),
          follow: (listener) => {
            deliver = listener
            return memory.follow((events) => void pending.push(events))
          }
        }
        const bus = yield* EventBus.make().pipe(Effect.provideService(EventLog.EventLog, log))
        const stored = yield* bus.publishAll(inputs(3))
        const sub = yield* bus.subscribe({ after: stored[1]!.id })
        assert.strictEqual(sub.outcome._tag, "Resumed")
        const [events] = yield* sub.takeAll
        assert.deepStrictEqual(Chunk.toArray(events), [stored[2]])
        assert.strictEqual((yield* bus.stats).bufferedEvents, 0)
      }))
  })

  describe("lifetimes", () => {
    /** Runs `body` (which checks that its subscriber is registered) and asserts that nothing is left once its scope closed. */
    const leavesNothing = <E>(
      options: EventBus.Options,
      body: (bus: Bus) => Effect.Effect<EventBus.EndReason | "failed" | "interrupted", E, Scope.Scope>,
      expected: string
    ) =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus(options)
        const outcome = yield* Effect.scoped(body(bus))
        assert.strictEqual(outcome, expected)
        const stats = yield* bus.stats
        assert.strictEqual(stats.subscribers, 0)
        assert.strictEqual(stats.bufferedEvents, 0)
        assert.strictEqual(stats.bufferedBytes, 0)
      })

    it.scoped("after overflow", () =>
      leavesNothing({ maxEvents: 1 }, (bus) =>
        Effect.gen(function*() {
          const sub = yield* bus.subscribe()
          yield* bus.publishAll(inputs(3))
          assert.strictEqual((yield* bus.stats).subscribers, 1)
          return yield* sub.ended
        }), "overflow"))

    it.scoped("after a stall", () =>
      leavesNothing({ stallTimeout: "1 second" }, (bus) =>
        Effect.gen(function*() {
          const sub = yield* bus.subscribe()
          yield* bus.publish({ topic: "t", data: "x" })
          yield* TestClock.adjust("5 seconds")
          assert.strictEqual((yield* bus.stats).subscribers, 1)
          return yield* sub.ended
        }), "stalled"))

    it.scoped("after shutdown", () =>
      leavesNothing({}, (bus) =>
        Effect.gen(function*() {
          const sub = yield* bus.subscribe()
          yield* bus.publish({ topic: "t", data: "x" })
          yield* bus.shutdown
          assert.strictEqual((yield* collect(sub.events)).length, 1, "what it held is flushed before the end")
          assert.strictEqual((yield* bus.stats).subscribers, 1)
          return yield* sub.ended
        }), "shutdown"))

    it.scoped("after the consumer is interrupted", () =>
      leavesNothing({}, (bus) =>
        Effect.gen(function*() {
          const fiber = yield* Effect.fork(Stream.runDrain(bus.streamLazy()))
          yield* settle
          assert.strictEqual((yield* bus.stats).subscribers, 1)
          yield* Fiber.interrupt(fiber)
          return "interrupted" as const
        }), "interrupted"))

    it.scoped("after the consumer's stream fails", () =>
      leavesNothing({}, (bus) =>
        Effect.gen(function*() {
          const fiber = yield* Effect.fork(
            bus.streamLazy().pipe(Stream.mapEffect(() => Effect.fail("consumer failed")), Stream.runDrain)
          )
          yield* settle
          assert.strictEqual((yield* bus.stats).subscribers, 1)
          yield* bus.publish({ topic: "t", data: "x" })
          const exit = yield* Fiber.await(fiber)
          assert.isTrue(Exit.isFailure(exit))
          if (Exit.isFailure(exit)) assert.deepStrictEqual(Chunk.toArray(Cause.failures(exit.cause)), ["consumer failed"])
          return "failed" as const
        }), "failed"))

    it.scoped("after the stream completes (take)", () =>
      leavesNothing({}, (bus) =>
        Effect.gen(function*() {
          const fiber = yield* Effect.fork(collect(Stream.take(bus.streamLazy(), 2)))
          yield* settle
          assert.strictEqual((yield* bus.stats).subscribers, 1)
          yield* bus.publishAll(inputs(3))
          assert.strictEqual((yield* Fiber.join(fiber)).length, 2)
          return "closed" as const
        }), "closed"))

    it.scoped("after an interruption between registration and replay", () =>
      Effect.gen(function*() {
        const gate = yield* Effect.makeLatch(false)
        const inner = yield* EventLog.makeMemory()
        // the real memory log, with reads held at a gate: the subscriber is registered, not yet replayed
        const log = EventLog.EventLog.of({ ...inner, read: (after, o) => Effect.zipRight(gate.await, inner.read(after, o)) })
        const bus = yield* EventBus.make().pipe(Effect.provideService(EventLog.EventLog, log))
        yield* bus.publishAll(inputs(3))
        const epoch = yield* log.epoch
        // through `stream` (its own scope) and through `subscribe` in the long-lived test scope
        const viaStream = yield* Effect.fork(Stream.runDrain(bus.streamLazy({ after: `${epoch}-1` })))
        const viaSubscribe = yield* Effect.fork(bus.subscribe({ after: `${epoch}-1` }))
        yield* settle
        assert.strictEqual((yield* bus.stats).subscribers, 2)
        yield* bus.publishAll(inputs(3))
        assert.strictEqual((yield* bus.stats).bufferedEvents, 6, "live events are already buffered")
        yield* Fiber.interrupt(viaStream)
        yield* Fiber.interrupt(viaSubscribe)
        const stats = yield* bus.stats
        assert.strictEqual(stats.subscribers, 0)
        assert.strictEqual(stats.bufferedEvents, 0)
      }))

    it.scoped("shutdown ends every subscriber, later subscriptions end at once, and closing the bus's scope shuts down", () =>
      Effect.gen(function*() {
        const busScope = yield* Scope.make()
        const log = yield* EventLog.makeMemory()
        const bus = yield* EventBus.make().pipe(Effect.provideService(EventLog.EventLog, log), Scope.extend(busScope))
        const a = yield* bus.subscribe()
        const b = yield* bus.subscribe({ topics: ["x"] })
        yield* bus.publish({ topic: "t", data: "x" })
        yield* Scope.close(busScope, Exit.void)
        assert.strictEqual(yield* a.ended, "shutdown")
        assert.strictEqual(yield* b.ended, "shutdown")
        assert.strictEqual((yield* collect(a.events)).length, 1)
        assert.deepStrictEqual(yield* collect(b.events), [])
        const late = yield* bus.subscribe()
        assert.strictEqual(yield* late.ended, "shutdown")
        assert.deepStrictEqual(yield* collect(late.events), [])
        assert.strictEqual((yield* bus.stats).ends.shutdown, 3)
      }))

    it.scoped("end(reason) ends a subscription after what it holds", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus()
        const sub = yield* bus.subscribe()
        yield* bus.publishAll(inputs(2))
        yield* sub.end("lifetime")
        yield* sub.end("overflow")
        yield* bus.publish({ topic: "t", data: "late" })
        assert.strictEqual(yield* sub.ended, "lifetime")
        assert.deepStrictEqual((yield* collect(sub.events)).map((e) => e.data), ["e0", "e1"])
        const stats = yield* bus.stats
        assert.strictEqual(stats.ends.lifetime, 1)
        assert.strictEqual(stats.ends.overflow, 0)
      }))
  })

  describe("resume", () => {
    it.scoped("replays exactly the matching events after the cursor, then continues live", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus()
        const stored = yield* bus.publishAll(
          Array.from({ length: 20 }, (_, i) => ({ topic: i % 2 === 0 ? "a/x" : "b", data: String(i) }))
        )
        const cursor = stored[4]!.id
        const sub = yield* bus.subscribe({ topics: ["a/*"], after: Event.formatId(cursor) })
        assert.deepStrictEqual(sub.outcome, { _tag: "Resumed", head: stored[19]!.id, after: cursor })
        const expected = stored.slice(5).filter((e) => e.topic === "a/x")
        assert.deepStrictEqual(sub.replay, expected)
        const live = yield* bus.publishAll([{ topic: "b", data: "no" }, { topic: "a/x", data: "live" }])
        assert.deepStrictEqual(yield* collect(Stream.take(sub.events, expected.length + 1)), [...expected, live[1]!])
      }))

    it.scoped("accepts an EventId and resumes at the head with nothing to replay", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus()
        const stored = yield* bus.publishAll(inputs(3))
        const atHead = yield* bus.subscribe({ after: stored[2]!.id })
        assert.deepStrictEqual(atHead.outcome, { _tag: "Resumed", head: stored[2]!.id, after: stored[2]!.id })
        assert.deepStrictEqual(atHead.replay, [])
        const fromStart = yield* bus.subscribe({ after: { epoch: stored[0]!.id.epoch, seq: 0 } })
        assert.deepStrictEqual(fromStart.replay, stored)
        const next = yield* bus.publish({ topic: "t", data: "next" })
        assert.deepStrictEqual(yield* collect(Stream.take(atHead.events, 1)), [next])
        assert.deepStrictEqual(yield* collect(Stream.take(fromStart.events, 4)), [...stored, next])
      }))

    it.scoped("events published while the replay is read are delivered once, after it", () =>
      Effect.gen(function*() {
        // while a replay is being read, two more events are published
        const bus = yield* busPublishingOnRead(2)
        const stored = yield* bus.publishAll(inputs(5))
        const sub = yield* bus.subscribe({ after: stored[1]!.id })
        assert.deepStrictEqual(seqs(sub.replay), [3, 4, 5])
        assert.deepStrictEqual(sub.outcome, { _tag: "Resumed", head: stored[4]!.id, after: stored[1]!.id })
        assert.deepStrictEqual(seqs(yield* collect(Stream.take(sub.events, 5))), [3, 4, 5, 6, 7])
      }))

    it.scoped("a live buffer that fills while the replay is read catches up from the log: nothing lost, nothing twice", () =>
      Effect.gen(function*() {
        // every read publishes 25 live events first, more than the subscriber's buffer of 10 holds, so
        // the live buffer overflows during the first scan and the replay; pages of about 40 events
        // (maxBytes), so the replay takes many reads
        const bus = yield* busPublishingOnRead(25, { maxReplay: 2_000, maxEvents: 10, maxBytes: 2_000 })
        const stored = yield* bus.publishAll(inputs(600))
        const sub = yield* bus.subscribe({ after: stored[99]!.id })
        const received = yield* collect(Stream.take(sub.events, 600))
        const { ends, log: { head } } = yield* bus.stats
        assert.isAbove(head, 600 + 50, "live events were published during the replay")
        assert.deepStrictEqual(seqs(received), Array.from({ length: 600 }, (_, i) => 101 + i), "in log order, no gap, no duplicate")
        assert.strictEqual(ends.overflow, 0, "caught up from the log instead of ending as overflow")
      }))

    it.scoped("a replay whose last page is taken but not yet passed catches up too when the live buffer fills", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus({ maxEvents: 10 })
        const stored = yield* bus.publishAll(inputs(5))
        const sub = yield* bus.subscribe({ after: stored[1]!.id })
        const [page] = yield* sub.takeAll // the replay's only page; the consumer has not asked again
        assert.deepStrictEqual(seqs([...page]), [3, 4, 5])
        yield* bus.publishAll(inputs(25, "t", 100)) // more than the live buffer holds
        const rest = yield* collect(Stream.take(sub.events, 25))
        assert.deepStrictEqual(seqs(rest), Array.from({ length: 25 }, (_, i) => 6 + i))
        assert.strictEqual((yield* bus.stats).ends.overflow, 0)
      }))

    it.scoped("the catch-up is bounded by maxReplay: past it the subscriber ends as overflow with its events in order", () =>
      Effect.gen(function*() {
        // more live events per read than a page replays: the subscriber can never catch up
        const bus = yield* busPublishingOnRead(200, { maxReplay: 600, maxEvents: 10, maxBytes: 2_000 })
        const stored = yield* bus.publishAll(inputs(600))
        const sub = yield* bus.subscribe({ after: stored[99]!.id })
        const received = yield* collect(sub.events)
        assert.strictEqual(yield* sub.ended, "overflow")
        assert.deepStrictEqual(seqs(received), Array.from({ length: received.length }, (_, i) => 101 + i), "a prefix of the log")
        assert.isAtLeast(received.length, 500, "the replay itself was delivered")
      }))

    it.scoped("a log that answers in short pages is read to the end of the range", () =>
      Effect.gen(function*() {
        const inner = yield* EventLog.makeMemory()
        // the real memory log, but no page holds more than 2 events (the contract allows it)
        const log = EventLog.EventLog.of({
          ...inner,
          read: (after, o) => inner.read(after, { ...o, limit: Math.min(o.limit, 2), upTo: Math.min(o.upTo ?? Infinity, after + 3) })
        })
        const bus = yield* EventBus.make({ maxReplay: 12 }).pipe(Effect.provideService(EventLog.EventLog, log))
        const stored = yield* bus.publishAll(
          Array.from({ length: 30 }, (_, i) => ({ topic: i % 3 === 0 ? "a" : "b", data: String(i) }))
        )
        const all = yield* bus.subscribe({ after: stored[19]!.id })
        assert.deepStrictEqual(all.replay, stored.slice(20))
        const some = yield* bus.subscribe({ topics: ["a"], after: stored[0]!.id })
        assert.deepStrictEqual(some.replay, stored.slice(1).filter((e) => e.topic === "a"))
        const tooMany = yield* bus.subscribe({ after: stored[10]!.id })
        assert.isTrue(tooMany.outcome._tag === "Reset" && tooMany.outcome.reason === "too-far-behind")
      }))

    it.scoped("a log read that makes no progress fails the subscription as Unavailable, never a silent gap", () =>
      Effect.gen(function*() {
        const inner = yield* EventLog.makeMemory()
        const log = EventLog.EventLog.of({ ...inner, read: (after) => Effect.succeed({ events: [], cursor: after }) })
        const bus = yield* EventBus.make().pipe(Effect.provideService(EventLog.EventLog, log))
        const stored = yield* bus.publishAll(inputs(3))
        const error = yield* Effect.flip(bus.subscribe({ after: stored[0]!.id }))
        assert.strictEqual(error.reason, "Unavailable")
        assert.strictEqual((yield* bus.stats).subscribers, 0)
      }))

    it.scoped("a log read that fails is a SubscribeError Unavailable", () =>
      Effect.gen(function*() {
        const inner = yield* EventLog.makeMemory()
        const log = EventLog.EventLog.of({
          ...inner,
          read: () => Effect.fail(new EventLog.EventLogError({ reason: "Unavailable", message: "backend down" }))
        })
        const bus = yield* EventBus.make().pipe(Effect.provideService(EventLog.EventLog, log))
        const stored = yield* bus.publishAll(inputs(3))
        const error = yield* Effect.flip(bus.subscribe({ after: stored[0]!.id }))
        assert.strictEqual(error.reason, "Unavailable")
        assert.include(error.message, "backend down")
        assert.strictEqual((yield* bus.stats).subscribers, 0)
      }))

    /** Asserts a reset with `reason` that carries the head and continues live from it. */
    const assertReset = (bus: Bus, sub: EventBus.Subscription, reason: EventBus.ResetReason, head: Event.EventId) =>
      Effect.gen(function*() {
        assert.strictEqual(sub.outcome._tag, "Reset")
        if (sub.outcome._tag !== "Reset") return
        assert.strictEqual(sub.outcome.reason, reason)
        assert.deepStrictEqual(sub.outcome.head, head)
        assert.isAbove(sub.outcome.message.length, 0)
        assert.deepStrictEqual(sub.replay, [])
        const next = yield* bus.publish({ topic: "t", data: "after reset" })
        assert.strictEqual(next.id.seq, head.seq + 1)
        assert.deepStrictEqual(yield* collect(Stream.take(sub.events, 1)), [next])
      })

    const malformed = ["", "-1", "1e3", "1".repeat(30), "abc", "x-01", "ABC-1", "abc-1.5", "abc-", "a-1-1", "a\n-1"]
    it.effect.each(malformed)("an invalid cursor %j is reset `invalid`", (cursor) =>
      Effect.gen(function*() {
        const { bus, log } = yield* makeBus()
        yield* bus.publishAll(inputs(3))
        const sub = yield* bus.subscribe({ after: cursor })
        yield* assertReset(bus, sub, "invalid", yield* log.head)
        assert.strictEqual((yield* bus.stats).resumes.invalid, 1)
      }).pipe(Effect.scoped))

    it.scoped("a malformed EventId object is reset `invalid`", () =>
      Effect.gen(function*() {
        const { bus, log } = yield* makeBus()
        yield* bus.publishAll(inputs(5))
        const epoch = yield* log.epoch
        for (const seq of [1.5, -1, Number.NaN, Infinity]) {
          const sub = yield* bus.subscribe({ after: { epoch, seq } })
          assert.isTrue(sub.outcome._tag === "Reset" && sub.outcome.reason === "invalid", String(seq))
        }
        const upper = yield* bus.subscribe({ after: { epoch: epoch.toUpperCase() + "X", seq: 1 } })
        assert.isTrue(upper.outcome._tag === "Reset" && upper.outcome.reason === "invalid")
      }))

    it.scoped("a cursor from another epoch is reset `epoch-mismatch`, also after a new memory log", () =>
      Effect.gen(function*() {
        const first = yield* makeBus()
        const old = yield* first.bus.publishAll(inputs(5))
        const { bus, log } = yield* makeBus()
        yield* bus.publishAll(inputs(5))
        assert.notStrictEqual(yield* log.epoch, old[0]!.id.epoch)
        // the same sequence number, in the previous incarnation's epoch
        const sub = yield* bus.subscribe({ after: old[2]!.id })
        yield* assertReset(bus, sub, "epoch-mismatch", yield* log.head)
        const other = yield* bus.subscribe({ after: "zzz-3" })
        assert.isTrue(other.outcome._tag === "Reset" && other.outcome.reason === "epoch-mismatch")
        assert.strictEqual((yield* bus.stats).resumes["epoch-mismatch"], 2)
      }))

    it.scoped("a cursor older than the log retains is reset `expired`", () =>
      Effect.gen(function*() {
        const { bus, log } = yield* makeBus({ log: { maxEvents: 5 } })
        const stored = yield* bus.publishAll(inputs(20))
        assert.strictEqual(yield* log.earliest, 16)
        // the oldest cursor still served exactly is earliest - 1
        const edge = yield* bus.subscribe({ after: stored[14]!.id })
        assert.strictEqual(edge.outcome._tag, "Resumed")
        assert.deepStrictEqual(seqs(edge.replay), range(16, 20))
        const fromZero = yield* bus.subscribe({ after: { epoch: stored[0]!.id.epoch, seq: 0 } })
        assert.isTrue(fromZero.outcome._tag === "Reset" && fromZero.outcome.reason === "expired")
        const sub = yield* bus.subscribe({ after: stored[14 - 1]!.id })
        yield* assertReset(bus, sub, "expired", stored[19]!.id)
        assert.strictEqual((yield* bus.stats).resumes.expired, 2)
      }))

    it.scoped("more than maxReplay matching events after the cursor is reset `too-far-behind`", () =>
      Effect.gen(function*() {
        const { bus, log } = yield* makeBus({ maxReplay: 10 })
        const stored = yield* bus.publishAll(inputs(20, "a"))
        yield* bus.publishAll(inputs(50, "b"))
        const head = yield* log.head
        const behind = yield* bus.subscribe({ after: stored[5]!.id })
        yield* assertReset(bus, behind, "too-far-behind", head)
        // only matching events count: 10 `a` events after the cursor is within maxReplay
        const filtered = yield* bus.subscribe({ topics: ["a"], after: stored[9]!.id })
        assert.strictEqual(filtered.outcome._tag, "Resumed")
        assert.strictEqual(filtered.replay.length, 10)
        // and a per-subscription maxReplay overrides the bus's
        const wider = yield* bus.subscribe({ after: stored[5]!.id, maxReplay: 100 })
        assert.strictEqual(wider.replay.length, 14 + 50 + 1)
        assert.strictEqual((yield* bus.stats).resumes["too-far-behind"], 1)
      }))

    it.scoped("a cursor beyond the head is reset `future`", () =>
      Effect.gen(function*() {
        const { bus, log } = yield* makeBus()
        yield* bus.publishAll(inputs(3))
        const epoch = yield* log.epoch
        const sub = yield* bus.subscribe({ after: `${epoch}-4` })
        yield* assertReset(bus, sub, "future", yield* log.head)
        const far = yield* bus.subscribe({ after: `${epoch}-${Number.MAX_SAFE_INTEGER}` })
        assert.isTrue(far.outcome._tag === "Reset" && far.outcome.reason === "future")
        assert.strictEqual((yield* bus.stats).resumes.future, 2)
      }))

    it.scoped("no cursor is a live start carrying the head", () =>
      Effect.gen(function*() {
        const { bus } = yield* makeBus()
        const stored = yield* bus.publishAll(inputs(3))
        const sub = yield* bus.subscribe()
        assert.deepStrictEqual(sub.outcome, { _tag: "Live", head: stored[2]!.id })
        assert.deepStrictEqual(sub.replay, [])
      }))
  })

  describe("resume under random interleavings", () => {
    it.effect.prop(
      "10,000 events, many disconnects and resumes: 0 lost, 0 duplicated, 0 out of order",
      [fc.integer()],
      ([seed]) =>
        Effect.gen(function*() {
          const run = yield* simulate(seed, 10_000, "resume")
          assert.strictEqual(run.logged.length, 10_000)
          const report = Delivery.check(run.logged, run.received)
          assert.isTrue(report.ok, `seed ${seed}: ${Delivery.describe(report)}`)
          assert.strictEqual(run.received.length, 10_000)
          assert.isAbove(run.sessionsWhilePublishing, 50, "many reconnects while events are being published")
          assert.isAbove(run.interruptedInReplay, 0, "some disconnects landed between registration and replay")
          assert.isAbove(run.stats.ends.overflow, 0, "some sessions ended by overflow")
          const { live, resumed, ...resets } = run.stats.resumes
          assert.strictEqual(live, 0)
          assert.isAbove(resumed, 50)
          assert.deepStrictEqual(Object.values(resets), [0, 0, 0, 0, 0], "no resets")
        }).pipe(Effect.scoped),
      { fastCheck: { numRuns: 6 } }
    )

    it("the delivery checker classifies lost, duplicated, out-of-order and unknown ids", () => {
      const log = ["a-1", "a-2", "a-3", "a-4", "a-5"]
      assert.isTrue(Delivery.check(log, log).ok)
      assert.deepStrictEqual(Delivery.check(log, ["a-1", "a-2", "a-4", "a-5"]).lost, ["a-3"])
      const dup = Delivery.check(log, ["a-1", "a-2", "a-2", "a-3", "a-1", "a-4", "a-5"])
      assert.deepStrictEqual([dup.duplicated, dup.lost, dup.outOfOrder], [["a-2", "a-1"], [], []])
      const swapped = Delivery.check(log, ["a-1", "a-3", "a-2", "a-4", "a-5"])
      assert.deepStrictEqual([swapped.outOfOrder, swapped.lost, swapped.duplicated], [["a-2"], [], []])
      const foreign = Delivery.check(log, [...log, "b-6"])
      assert.deepStrictEqual([foreign.unknown, foreign.ok], [["b-6"], false])
      const event = (seq: number): Event.Event => ({ id: { epoch: "a", seq }, topic: "t", type: "message", data: "", time: 0 })
      assert.isTrue(Delivery.check(log, [1, 2, 3, 4, 5].map(event)).ok)
      assert.deepStrictEqual(Delivery.check([1, 2].map(event), [{ epoch: "a", seq: 2 }]).lost, ["a-1"])
    })

    it.effect("negative control: reading the log, then subscribing live without `after`, loses events", () =>
      Effect.gen(function*() {
        for (const seed of [1, 2, 3]) {
          const run = yield* Effect.scoped(simulate(seed, 10_000, "read-then-live"))
          const report = Delivery.check(run.logged, run.received)
          assert.isFalse(report.ok)
          assert.isAbove(report.lost.length, 0, `seed ${seed}: ${Delivery.describe(report)}`)
          assert.strictEqual(report.duplicated.length, 0)
          assert.strictEqual(report.outOfOrder.length, 0)
        }
      }))
  })

  describe("stats", () => {
    it.scoped("a bus's name labels its metrics: unique among open buses, freed when it closes; a bad one is a ConfigError", () =>
      Effect.gen(function*() {
        const names = (yield* Effect.all([makeBus({ name: "n" }), makeBus({ name: "n" }), makeBus({ name: "n" })]))
        assert.deepStrictEqual(yield* Effect.forEach(names, ({ bus }) => Effect.map(bus.stats, (s) => s.name)), ["n", "n-2", "n-3"])
        const reused = yield* Effect.scoped(Effect.zipRight(Effect.scoped(makeBus({ name: "once" })), makeBus({ name: "once" })))
        assert.strictEqual((yield* reused.bus.stats).name, "once")
        for (const name of ["", "a b", "x".repeat(101), "é"]) {
          const error = yield* Effect.flip(Effect.scoped(makeBus({ name })))
          assert.strictEqual(error._op, "InvalidData", name)
          assert.include(error.message, "name")
        }
      }))

    it.scoped("counts published, delivered, ends by reason and resumes by outcome", () =>
      Effect.gen(function*() {
        const { bus, log } = yield* makeBus({ maxEvents: 3, stallTimeout: "1 second" })
        const epoch = yield* log.epoch
        const empty = yield* bus.stats
        assert.deepStrictEqual(empty, {
          name: "default",
          subscribers: 0,
          bufferedEvents: 0,
          bufferedBytes: 0,
          replayBytes: 0,
          published: 0,
          delivered: 0,
          ends: { overflow: 0, stalled: 0, shutdown: 0, lifetime: 0, unavailable: 0, closed: 0, "log-reset": 0 },
          resumes: { live: 0, resumed: 0, "epoch-mismatch": 0, expired: 0, "too-far-behind": 0, future: 0, invalid: 0 },
          log: { epoch, head: 0, earliest: 1, position: 0 }
        })

        const reader = yield* bus.subscribe()
        const readerFiber = yield* Effect.fork(collect(Stream.take(reader.events, 5)))
        const overflowing = yield* bus.subscribe()
        const stored = yield* bus.publishAll(inputs(3))
        yield* settle
        yield* bus.publish({ topic: "t", data: "overflow" })
        assert.strictEqual(yield* overflowing.ended, "overflow")
        // a replay counts as delivered when its consumer takes it
        yield* Effect.scoped(Effect.flatMap(bus.subscribe({ after: stored[0]!.id }), (s) => s.takeAll))
        yield* Effect.scoped(bus.subscribe({ after: "nope" }))
        const stalling = yield* bus.subscribe({ topics: ["s"] })
        yield* bus.publish({ topic: "s", data: "x" })
        assert.strictEqual((yield* Fiber.join(readerFiber)).length, 5)
        yield* TestClock.adjust("3 seconds")
        assert.strictEqual(yield* stalling.ended, "stalled")

        const stats = yield* bus.stats
        assert.strictEqual(stats.published, 5)
        // the reader's 5, plus the replay of seq 2..4
        assert.strictEqual(stats.delivered, 5 + 3)
        assert.deepStrictEqual(stats.ends, { overflow: 1, stalled: 1, shutdown: 0, lifetime: 0, unavailable: 0, closed: 2, "log-reset": 0 })
        assert.deepStrictEqual(stats.resumes, {
          live: 3,
          resumed: 1,
          "epoch-mismatch": 0,
          expired: 0,
          "too-far-behind": 0,
          future: 0,
          invalid: 1
        })
        assert.strictEqual(stats.subscribers, 3)
        assert.strictEqual(stats.bufferedEvents, 3 + 1, "the overflowed and the stalled subscribers' events")
        assert.deepStrictEqual(stats.log, { epoch, head: 5, earliest: 1, position: 5 })
      }))
  })
})

