/**
 * The conformance suite every EventLog backend must pass. It states the contract written on
 * `EventLog` (src/EventLog.ts) as tests; a backend's test file calls `suite` once per layer.
 *
 * Each test builds the layer afresh and only assumes what the contract promises, relative to the
 * head it finds, so a backend whose layer connects to shared storage can run it too. Tests use the
 * real clock (`it.live`) because backends may do real I/O and notify followers asynchronously.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import type * as Event from "../src/Event.js"
import * as EventLog from "../src/EventLog.js"

export interface SuiteOptions<E> {
  /**
   * A log of the same backend that retains at most about `maxEvents` events, for the tests of
   * trimming and `Expired`. Omit it for a backend that never trims.
   */
  readonly retention?: { readonly layer: Layer.Layer<EventLog.EventLog, E>; readonly maxEvents: number } | undefined
  /** How long to wait for a follower to see appended events (default 5 s). */
  readonly followTimeoutMillis?: number | undefined
}

const inputs = (n: number, topic = "t", from = 0): Array<Event.EventInput> =>
  Array.from({ length: n }, (_, i) => ({ topic, data: `e${from + i}` }))

const seqs = (events: ReadonlyArray<Event.Event>) => events.map((e) => e.id.seq)

const range = (from: number, to: number): Array<number> => Array.from({ length: to - from + 1 }, (_, i) => from + i)

/** Reads `(after, upTo]` to the end through the cursor, `limit` matching events per page. */
const readAll = (after: number, options: EventLog.ReadOptions & { readonly upTo: number }) =>
  Effect.gen(function*() {
    const log = yield* EventLog.EventLog
    const events: Array<Event.Event> = []
    const pageSizes: Array<number> = []
    let cursor = after
    while (cursor < options.upTo) {
      const page = yield* log.read(cursor, options)
      assert.isAbove(page.cursor, cursor, "every page makes progress")
      assert.isAtMost(page.events.length, options.limit)
      pageSizes.push(page.events.length)
      events.push(...page.events)
      cursor = page.cursor
    }
    assert.strictEqual(cursor, options.upTo)
    return { events, pageSizes }
  })

export const suite = <E>(name: string, layer: Layer.Layer<EventLog.EventLog, E>, options?: SuiteOptions<E>): void => {
  const followTimeout = options?.followTimeoutMillis ?? 5_000

  /** Waits until `received` holds at least `n` events (followers may be notified asynchronously). */
  const awaitFollowed = (received: ReadonlyArray<Event.Event>, n: number) =>
    Effect.gen(function*() {
      const deadline = Date.now() + followTimeout
      while (received.length < n && Date.now() < deadline) yield* Effect.sleep("2 millis")
      assert.isAtLeast(received.length, n, "the follower saw every appended event in time")
    })

  describe(`EventLog conformance: ${name}`, () => {
    it.live("has a stable lowercase alphanumeric epoch shared by head", () =>
      Effect.gen(function*() {
        const log = yield* EventLog.EventLog
        const epoch = yield* log.epoch
        assert.match(epoch, /^[0-9a-z]{1,32}$/)
        assert.strictEqual(yield* log.epoch, epoch)
        const head = yield* log.head
        assert.strictEqual(head.epoch, epoch)
        assert.isTrue(Number.isSafeInteger(head.seq) && head.seq >= 0)
        const earliest = yield* log.earliest
        assert.isTrue(earliest >= 1 && earliest <= head.seq + 1)
      }).pipe(Effect.provide(layer)))

    it.live("append assigns consecutive sequence numbers from head + 1 in input order", () =>
      Effect.gen(function*() {
        const log = yield* EventLog.EventLog
        const epoch = yield* log.epoch
        const h0 = (yield* log.head).seq
        const first = yield* log.append([
          { topic: "a/1", data: "one" },
          { topic: "b", type: "order.created", data: "two" },
          { topic: "a/2", type: "message", data: "" }
        ])
        const second = yield* log.append([{ topic: "c", data: "four" }])
        assert.deepStrictEqual(seqs(first), [h0 + 1, h0 + 2, h0 + 3])
        assert.deepStrictEqual(seqs(second), [h0 + 4])
        for (const event of [...first, ...second]) {
          assert.strictEqual(event.id.epoch, epoch)
          assert.isTrue(Number.isFinite(event.time) && event.time > 0)
        }
        assert.deepStrictEqual(first.map((e) => [e.topic, e.type, e.data]), [
          ["a/1", "message", "one"],
          ["b", "order.created", "two"],
          ["a/2", "message", ""]
        ])
        assert.deepStrictEqual(yield* log.head, { epoch, seq: h0 + 4 })
      }).pipe(Effect.provide(layer)))

    it.live("stores data verbatim", () =>
      Effect.gen(function*() {
        const log = yield* EventLog.EventLog
        const h0 = (yield* log.head).seq
        const data = ["", " ", "a\r\nb\rc\nd", "ünïcödé 🎉", "\u0000\u001f", "{\"json\":[1,2]}", "x".repeat(100_000)]
        yield* log.append(data.map((d) => ({ topic: "t", data: d })))
        const page = yield* log.read(h0, { limit: data.length })
        assert.deepStrictEqual(page.events.map((e) => e.data), data)
      }).pipe(Effect.provide(layer)))

    it.live("read returns events after the cursor, in order, at most limit, with a resumable cursor", () =>
      Effect.gen(function*() {
        const log = yield* EventLog.EventLog
        const h0 = (yield* log.head).seq
        const stored = yield* log.append(inputs(10))
        const page = yield* log.read(h0 + 2, { limit: 3 })
        assert.deepStrictEqual(seqs(page.events), [h0 + 3, h0 + 4, h0 + 5])
        assert.deepStrictEqual(page.events, stored.slice(2, 5))
        assert.strictEqual(page.cursor, h0 + 5)
        const rest = yield* log.read(page.cursor, { limit: 100 })
        assert.deepStrictEqual(seqs(rest.events), range(h0 + 6, h0 + 10))
        assert.strictEqual(rest.cursor, h0 + 10)
        const atHead = yield* log.read(h0 + 10, { limit: 100 })
        assert.deepStrictEqual(atHead.events, [])
        assert.strictEqual(atHead.cursor, h0 + 10)
      }).pipe(Effect.provide(layer)))

    it.live("read stops at upTo, inclusive, and clamps upTo to the head", () =>
      Effect.gen(function*() {
        const log = yield* EventLog.EventLog
        const h0 = (yield* log.head).seq
        yield* log.append(inputs(10))
        const bounded = yield* log.read(h0, { limit: 100, upTo: h0 + 4 })
        assert.deepStrictEqual(seqs(bounded.events), range(h0 + 1, h0 + 4))
        assert.strictEqual(bounded.cursor, h0 + 4)
        const empty = yield* log.read(h0 + 4, { limit: 100, upTo: h0 + 4 })
        assert.deepStrictEqual(empty.events, [])
        const beyond = yield* log.read(h0 + 8, { limit: 100, upTo: h0 + 1_000 })
        assert.deepStrictEqual(seqs(beyond.events), [h0 + 9, h0 + 10])
        assert.strictEqual(beyond.cursor, h0 + 10)
      }).pipe(Effect.provide(layer)))

    it.live("a filter decides what counts toward limit, and the cursor passes over what it skips", () =>
      Effect.gen(function*() {
        const log = yield* EventLog.EventLog
        const h0 = (yield* log.head).seq
        yield* log.append([...inputs(5, "skip"), ...inputs(2, "keep"), ...inputs(5, "skip")])
        const filter = (e: Event.Event) => e.topic === "keep"
        const one = yield* log.read(h0, { limit: 1, filter })
        assert.deepStrictEqual(seqs(one.events), [h0 + 6])
        assert.strictEqual(one.cursor, h0 + 6)
        const both = yield* log.read(h0, { limit: 10, filter, upTo: h0 + 12 })
        assert.deepStrictEqual(seqs(both.events), [h0 + 6, h0 + 7])
        assert.strictEqual(both.cursor, h0 + 12)
        const none = yield* log.read(h0 + 7, { limit: 10, filter })
        assert.deepStrictEqual(none.events, [])
        assert.strictEqual(none.cursor, h0 + 12)
      }).pipe(Effect.provide(layer)))

    it.live("paging through the cursor yields every matching event exactly once, in order", () =>
      Effect.gen(function*() {
        const log = yield* EventLog.EventLog
        const h0 = (yield* log.head).seq
        const stored = yield* log.append(
          Array.from({ length: 500 }, (_, i) => ({ topic: i % 3 === 0 ? "x" : "y", data: String(i) }))
        )
        const filter = (e: Event.Event) => e.topic === "x"
        const { events, pageSizes } = yield* readAll(h0, { limit: 7, filter, upTo: h0 + 500 })
        assert.deepStrictEqual(events, stored.filter(filter))
        assert.isAbove(pageSizes.length, 1)
        const all = yield* readAll(h0, { limit: 64, upTo: h0 + 500 })
        assert.deepStrictEqual(all.events, stored)
      }).pipe(Effect.provide(layer)))

    it.live("concurrent appends get unique consecutive sequence numbers and batches stay whole", () =>
      Effect.gen(function*() {
        const log = yield* EventLog.EventLog
        const h0 = (yield* log.head).seq
        const writers = 8
        const batches = 25
        const size = 4
        const results = yield* Effect.forEach(
          range(1, writers),
          (w) =>
            Effect.forEach(
              range(1, batches),
              (b) => log.append(inputs(size, `w${w}/b${b}`)).pipe(Effect.tap(() => Effect.yieldNow())),
              { concurrency: 1 }
            ),
          { concurrency: "unbounded" }
        )
        const total = writers * batches * size
        assert.strictEqual((yield* log.head).seq, h0 + total)
        for (const batch of results.flat()) {
          const s = seqs(batch)
          assert.deepStrictEqual(s, range(s[0]!, s[0]! + size - 1), "a batch is consecutive")
        }
        const { events } = yield* readAll(h0, { limit: 1_000, upTo: h0 + total })
        assert.deepStrictEqual(seqs(events), range(h0 + 1, h0 + total))
        assert.deepStrictEqual(events, results.flat().flat().sort((a, b) => a.id.seq - b.id.seq))
      }).pipe(Effect.provide(layer)))

    it.live("a reader concurrent with appends sees each batch whole or not at all", () =>
      Effect.gen(function*() {
        const log = yield* EventLog.EventLog
        const h0 = (yield* log.head).seq
        const size = 5
        const writer = yield* Effect.forEach(
          range(1, 200),
          (b) => log.append(inputs(size, `b${b}`)).pipe(Effect.zipLeft(Effect.yieldNow())),
          { discard: true }
        ).pipe(Effect.fork)
        let reads = 0
        while (reads < 200) {
          reads++
          const head = (yield* log.head).seq
          const { events } = yield* readAll(h0, { limit: 10_000, upTo: head })
          const counts = new Map<string, number>()
          for (const e of events) counts.set(e.topic, (counts.get(e.topic) ?? 0) + 1)
          for (const [topic, count] of counts) assert.strictEqual(count, size, topic)
          yield* Effect.yieldNow()
        }
        yield* Fiber.join(writer)
      }).pipe(Effect.provide(layer)))

    it.live("follow returns the head and then sees every later append exactly once, in log order", () =>
      Effect.gen(function*() {
        const log = yield* EventLog.EventLog
        yield* log.append(inputs(3, "before"))
        const received: Array<Event.Event> = []
        const head = yield* log.follow((events) => {
          received.push(...events)
        })
        assert.deepStrictEqual(head, yield* log.head)
        const appended: Array<Event.Event> = []
        for (let i = 0; i < 50; i++) appended.push(...(yield* log.append(inputs(1 + (i % 4), "after", i * 10))))
        yield* awaitFollowed(received, appended.length)
        assert.deepStrictEqual(received, appended)
        assert.strictEqual(received[0]!.id.seq, head.seq + 1)
      }).pipe(Effect.scoped, Effect.provide(layer)))

    it.live("follow with concurrent writers sees a gapless log-ordered sequence", () =>
      Effect.gen(function*() {
        const log = yield* EventLog.EventLog
        const received: Array<Event.Event> = []
        const head = yield* log.follow((events) => {
          received.push(...events)
        })
        yield* Effect.forEach(
          range(1, 6),
          (w) => Effect.forEach(range(1, 50), () => log.append(inputs(2, `w${w}`)).pipe(Effect.zipLeft(Effect.yieldNow()))),
          { concurrency: "unbounded", discard: true }
        )
        yield* awaitFollowed(received, 600)
        assert.deepStrictEqual(seqs(received), range(head.seq + 1, head.seq + 600))
      }).pipe(Effect.scoped, Effect.provide(layer)))

    it.live("follow stops when its scope closes, and followers are independent", () =>
      Effect.gen(function*() {
        const log = yield* EventLog.EventLog
        const kept: Array<Event.Event> = []
        const dropped: Array<Event.Event> = []
        yield* log.follow((events) => {
          kept.push(...events)
        })
        const scope = yield* Scope.make()
        yield* log.follow((events) => {
          dropped.push(...events)
        }).pipe(Scope.extend(scope))
        yield* log.append(inputs(2))
        yield* awaitFollowed(dropped, 2)
        yield* Scope.close(scope, Exit.void)
        yield* log.append(inputs(3))
        yield* awaitFollowed(kept, 5)
        yield* Effect.sleep("20 millis")
        assert.strictEqual(dropped.length, 2)
        assert.strictEqual(kept.length, 5)
      }).pipe(Effect.scoped, Effect.provide(layer)))

    const retention = options?.retention
    if (retention !== undefined) {
      it.live("trims the oldest events, and a read that needs them fails with Expired", () =>
        Effect.gen(function*() {
          const log = yield* EventLog.EventLog
          const h0 = (yield* log.head).seq
          const n = retention.maxEvents * 5
          for (let i = 0; i < n; i += 7) yield* log.append(inputs(Math.min(7, n - i), "t", i))
          const head = (yield* log.head).seq
          assert.strictEqual(head, h0 + n)
          const earliest = yield* log.earliest
          assert.isAbove(earliest, h0 + 1, "old events were trimmed")
          assert.isAtMost(earliest, head)
          assert.isAtMost(head - earliest + 1, retention.maxEvents * 2, "retention is roughly maxEvents")

          const expired = yield* Effect.either(log.read(h0, { limit: 10 }))
          assert.isTrue(Either.isLeft(expired) && expired.left.reason === "Expired")
          const justExpired = yield* Effect.either(log.read(earliest - 2, { limit: 10 }))
          assert.isTrue(Either.isLeft(justExpired) && justExpired.left.reason === "Expired")

          const { events } = yield* readAll(earliest - 1, { limit: 3, upTo: head })
          assert.deepStrictEqual(seqs(events), range(earliest, head))
          assert.deepStrictEqual(events.map((e) => e.data), range(earliest - h0 - 1, n - 1).map((i) => `e${i}`))
        }).pipe(Effect.provide(retention.layer)))
    }
  })
}
