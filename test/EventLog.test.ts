import { assert, describe, it } from "@effect/vitest"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import * as EventLog from "../src/EventLog.js"
import * as Sse from "../src/Sse.js"
import { suite } from "./EventLogSuite.js"

suite("memory", EventLog.layerMemory(), {
  retention: { layer: EventLog.layerMemory({ maxEvents: 10 }), maxEvents: 10 }
})

const withLog = (options?: EventLog.MemoryOptions) => Effect.provide(EventLog.layerMemory(options))

describe("EventLog memory backend", () => {
  it.effect("starts empty: head 0, earliest 1", () =>
    Effect.gen(function*() {
      const log = yield* EventLog.EventLog
      assert.deepStrictEqual(yield* log.head, { epoch: "e1", seq: 0 })
      assert.strictEqual(yield* log.earliest, 1)
      const page = yield* log.read(0, { limit: 10 })
      assert.deepStrictEqual(page, { events: [], cursor: 0 })
    }).pipe(withLog({ epoch: "e1" })))

  it.effect("takes a fresh random epoch per instance unless one is given", () =>
    Effect.gen(function*() {
      const epochs = new Set<string>()
      for (let i = 0; i < 20; i++) {
        const log = yield* EventLog.makeMemory()
        epochs.add(yield* log.epoch)
      }
      assert.strictEqual(epochs.size, 20)
      const fixed = yield* EventLog.makeMemory({ epoch: "fixed1" })
      assert.strictEqual(yield* fixed.epoch, "fixed1")
    }))

  it.effect("stamps events with the Clock's time", () =>
    Effect.gen(function*() {
      const log = yield* EventLog.EventLog
      yield* TestClock.setTime(1_700_000_000_000)
      const [a] = yield* log.append([{ topic: "t", data: "a" }])
      yield* TestClock.adjust("1500 millis")
      const [b] = yield* log.append([{ topic: "t", data: "b" }])
      assert.strictEqual(a!.time, 1_700_000_000_000)
      assert.strictEqual(b!.time, 1_700_000_001_500)
    }).pipe(withLog()))

  it.effect("keeps at most maxEvents, across many wraps of the ring", () =>
    Effect.gen(function*() {
      const log = yield* EventLog.EventLog
      for (let i = 1; i <= 103; i++) yield* log.append([{ topic: "t", data: String(i) }])
      assert.strictEqual((yield* log.head).seq, 103)
      assert.strictEqual(yield* log.earliest, 97)
      const page = yield* log.read(96, { limit: 100 })
      assert.deepStrictEqual(page.events.map((e) => e.data), ["97", "98", "99", "100", "101", "102", "103"])
      const middle = yield* log.read(99, { limit: 2 })
      assert.deepStrictEqual(middle.events.map((e) => e.id.seq), [100, 101])
      const expired = yield* Effect.either(log.read(95, { limit: 100 }))
      assert.isTrue(Either.isLeft(expired) && expired.left.reason === "Expired")
    }).pipe(withLog({ maxEvents: 7 })))

  it.effect("keeps at most maxBytes (data, SSE frame, topic and type plus 64 bytes per event)", () =>
    Effect.gen(function*() {
      const log = yield* EventLog.EventLog
      // seq 10-20: 100 bytes of data + its 117-byte frame ("id: e-10\n", "data: " + data + "\n", "\n")
      // + 1 (topic) + 7 ("message") + 64 = 289 bytes; 1,000 bytes hold 3
      for (let i = 0; i < 20; i++) yield* log.append([{ topic: "t", data: "x".repeat(100) }])
      const [last] = (yield* log.read(19, { limit: 1 })).events
      assert.strictEqual(Sse.encodeEvent(last!).byteLength, 117)
      assert.strictEqual((yield* log.head).seq, 20)
      assert.strictEqual(yield* log.earliest, 18)
      // multi-byte data counts in UTF-8 bytes: 50 × "é" is 100 bytes
      yield* log.append([{ topic: "t", data: "é".repeat(50) }])
      assert.strictEqual(yield* log.earliest, 19)
      // each line break costs a "data: " line in the frame: 100 line breaks weigh 100 + 717 + 72 = 889
      // bytes, so the event is kept alone
      yield* log.append([{ topic: "t", data: "\n".repeat(100) }])
      assert.strictEqual(yield* log.earliest, 22)
    }).pipe(withLog({ maxBytes: 1_000, epoch: "e" })))

  it.effect("keeps a single event larger than maxBytes, alone", () =>
    Effect.gen(function*() {
      const log = yield* EventLog.EventLog
      yield* log.append([{ topic: "t", data: "small" }])
      yield* log.append([{ topic: "t", data: "x".repeat(5_000) }])
      assert.strictEqual(yield* log.earliest, 2)
      const page = yield* log.read(1, { limit: 10 })
      assert.strictEqual(page.events[0]!.data.length, 5_000)
      yield* log.append([{ topic: "t", data: "next" }])
      assert.strictEqual(yield* log.earliest, 3)
    }).pipe(withLog({ maxBytes: 1_000 })))

  it.effect("a batch larger than the ring keeps its newest events", () =>
    Effect.gen(function*() {
      const log = yield* EventLog.EventLog
      const stored = yield* log.append(Array.from({ length: 12 }, (_, i) => ({ topic: "t", data: String(i) })))
      assert.strictEqual(stored.length, 12)
      assert.strictEqual(yield* log.earliest, 8)
      const page = yield* log.read(7, { limit: 100 })
      assert.deepStrictEqual(page.events, stored.slice(7))
    }).pipe(withLog({ maxEvents: 5 })))

  it.effect("refuses non-positive limits with a ConfigError naming the option", () =>
    Effect.gen(function*() {
      for (const options of [{ maxEvents: 0 }, { maxBytes: -1 }, { maxEvents: Number.NaN }]) {
        const error = yield* Effect.flip(EventLog.makeMemory(options))
        assert.strictEqual(error._op, "InvalidData", JSON.stringify(options))
        assert.include(error.message, Object.keys(options)[0]!)
      }
    }))

  it.effect("layerMemoryConfig reads its options from Config", () =>
    Effect.gen(function*() {
      const log = yield* EventLog.EventLog
      assert.strictEqual(yield* log.epoch, "fromconfig")
      for (let i = 0; i < 5; i++) yield* log.append([{ topic: "t", data: String(i) }])
      assert.strictEqual(yield* log.earliest, 4)
    }).pipe(
      Effect.provide(
        EventLog.layerMemoryConfig({
          maxEvents: Config.number("MAX_EVENTS"),
          maxBytes: Config.withDefault(Config.number("MAX_BYTES"), undefined),
          epoch: Config.string("EPOCH")
        }).pipe(
          Layer.provide(
            Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["MAX_EVENTS", "2"], ["EPOCH", "fromconfig"]])))
          )
        )
      )
    ))

  describe("idempotency", () => {
    it.effect("a repeated key returns the first event; followers see only what was appended", () =>
      Effect.gen(function*() {
        const log = yield* EventLog.EventLog
        const followed: Array<number> = []
        yield* log.follow((events) => followed.push(...events.map((e) => e.id.seq)))
        const [first] = yield* log.append([{ topic: "t", data: "a", idempotencyKey: "k1" }])
        const batch = yield* log.append([
          { topic: "t", data: "b", idempotencyKey: "k2" },
          { topic: "t", data: "a", idempotencyKey: "k1" },
          { topic: "t", data: "b", idempotencyKey: "k2" },
          { topic: "t", data: "c" }
        ])
        assert.deepStrictEqual(batch.map((e) => e.id.seq), [2, 1, 2, 3])
        assert.strictEqual(batch[1], first)
        assert.deepStrictEqual(followed, [1, 2, 3])
        assert.strictEqual((yield* log.head).seq, 3)
      }).pipe(Effect.scoped, withLog()))

    it.effect("a key is remembered for the window (default 5 minutes), then forgotten", () =>
      Effect.gen(function*() {
        const log = yield* EventLog.EventLog
        const [first] = yield* log.append([{ topic: "t", data: "a", idempotencyKey: "k" }])
        yield* TestClock.adjust("299 seconds")
        assert.strictEqual((yield* log.append([{ topic: "t", data: "a", idempotencyKey: "k" }]))[0], first)
        yield* TestClock.adjust("1 second")
        const [again] = yield* log.append([{ topic: "t", data: "a", idempotencyKey: "k" }])
        assert.strictEqual(again!.id.seq, 2)
      }).pipe(withLog()))

    it.effect("idempotencyWindow sets the window", () =>
      Effect.gen(function*() {
        const log = yield* EventLog.EventLog
        yield* log.append([{ topic: "t", data: "a", idempotencyKey: "k" }])
        yield* TestClock.adjust("10 seconds")
        const [again] = yield* log.append([{ topic: "t", data: "a", idempotencyKey: "k" }])
        assert.strictEqual(again!.id.seq, 2)
      }).pipe(withLog({ idempotencyWindow: "10 seconds" })))

    it.effect("bad keys fail with InvalidInput and nothing of the batch is appended", () =>
      Effect.gen(function*() {
        const log = yield* EventLog.EventLog
        for (const key of ["", "x".repeat(201), "é".repeat(101), "a\nb", "\u0000", "\u009b"]) {
          const error = yield* Effect.flip(log.append([{ topic: "t", data: "ok" }, { topic: "t", data: "x", idempotencyKey: key }]))
          assert.strictEqual(error.reason, "InvalidInput", JSON.stringify(key))
          assert.include(error.message, "(event 1)")
        }
        assert.strictEqual((yield* log.head).seq, 0)
      }).pipe(withLog()))
  })
})
