/**
 * The shared delivery checker (test/utils/DeliveryChecker.ts), and its controls: real `eventsource`
 * clients read three test-only servers built from the real log and bus (test/utils/controlServer.ts).
 * The correct one must come out clean; the two broken ones (reading the log before subscribing,
 * resuming without the floor) must be flagged on every run, because the test publishes inside the
 * race window of every resume rather than waiting for a race to happen.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { EventSource } from "eventsource"
import type * as Event from "../../src/Event.js"
import { startControlServer, type Variant } from "../utils/controlServer.js"
import * as Delivery from "../utils/DeliveryChecker.js"
import { sleepReal, waitFor } from "../utils/sse.js"

describe("DeliveryChecker", () => {
  const log = ["a-1", "a-2", "a-3", "a-4", "a-5", "a-6"]

  it("classifies lost, duplicated, out-of-order and unknown ids", () => {
    assert.isTrue(Delivery.check(log, log).ok)
    const report = Delivery.check(log, ["a-1", "a-3", "a-2", "a-3", "a-5", "b-9"])
    assert.deepStrictEqual(
      [report.lost, report.duplicated, report.outOfOrder, report.unknown, report.skippedByReset, report.ok],
      [["a-4", "a-6"], ["a-3"], ["a-2"], ["b-9"], [], false]
    )
  })

  it("excuses only the ids in a reset's gap, and reports them apart", () => {
    // The client had a-2 when it got a reset whose head was a-4: a-3 and a-4 are skipped, not lost.
    const skipped = Delivery.check(log, ["a-1", "a-2", Delivery.reset("a-4"), "a-5", "a-6"])
    assert.deepStrictEqual([skipped.lost, skipped.skippedByReset, skipped.resets, skipped.ok], [[], ["a-3", "a-4"], 1, true])
    // Ids missing outside the gap (before what the client had, after the head) are still lost.
    const outside = Delivery.check(log, ["a-2", Delivery.reset("a-4"), "a-6"])
    assert.deepStrictEqual([outside.lost, outside.skippedByReset, outside.ok], [["a-1", "a-5"], ["a-3", "a-4"], false])
    // A gap id that shows up after the reset came out of order.
    const late = Delivery.check(log, ["a-1", Delivery.reset("a-3"), "a-2", "a-4", "a-5", "a-6"])
    assert.deepStrictEqual([late.outOfOrder, late.skippedByReset], [["a-2"], ["a-3"]])
    // A head in the log's epoch but not itself in the log covers up to the newest event before it;
    // a head of another epoch excuses nothing of this one.
    const between = Delivery.check(["a-1", "a-3", "a-5"], [Delivery.reset("a-4"), "a-5"])
    assert.deepStrictEqual([between.lost, between.skippedByReset], [[], ["a-1", "a-3"]])
    const other = Delivery.check(log, [Delivery.reset("b-4"), "a-5", "a-6"])
    assert.deepStrictEqual([other.lost, other.skippedByReset, other.ok], [["a-1", "a-2", "a-3", "a-4"], [], false])
    assert.include(Delivery.describe(skipped), "skipped by 1 reset(s) 2")
  })
})

const WINDOWS = 10
const WINDOW_EVENTS = 3

/** One real client against a control server: the log, what it received, and the window's events. */
const runControl = (variant: Variant) =>
  Effect.gen(function*() {
    const logged: Array<string> = []
    const windowIds: Array<string> = []
    const record = (events: ReadonlyArray<Event.Event>) => events.map((e) => `${e.id.epoch}-${e.id.seq}`)
    let windows = 0
    let bus: { publishAll: (inputs: Iterable<Event.EventInput>) => Effect.Effect<ReadonlyArray<Event.Event>, unknown> }
    const publish = (count: number) =>
      Effect.map(
        Effect.orDie(bus.publishAll(Array.from({ length: count }, () => ({ topic: "t", data: String(logged.length) })))),
        (events) => {
          const ids = record(events)
          logged.push(...ids)
          return ids
        }
      )
    const server = yield* startControlServer({
      variant,
      perConnection: 20,
      inWindow: Effect.suspend(() =>
        windows++ < WINDOWS ? Effect.map(publish(WINDOW_EVENTS), (ids) => void windowIds.push(...ids)) : Effect.void
      ),
      afterSubscribe: Effect.suspend(() => (windows <= WINDOWS ? Effect.asVoid(publish(1)) : Effect.void))
    })
    bus = server.bus
    const epoch = (yield* server.bus.stats).log.epoch
    const received: Array<string> = []
    const source = new EventSource(`${server.url}/events?lastEventId=${epoch}-0`)
    yield* Effect.addFinalizer(() => Effect.sync(() => source.close()))
    source.onmessage = (e) => received.push(e.lastEventId)
    // Publish until the server went through every window (each stream ends after 20 live events).
    for (let i = 0; windows < WINDOWS; i++) {
      assert.isBelow(i, 2_000, `${variant}: the client kept resuming (${server.resumes()} resumes)`)
      yield* publish(5)
      yield* sleepReal(2)
    }
    const last = logged[logged.length - 1]!
    yield* waitFor(`${variant}: the client to receive the last event`, () => received.includes(last), 10_000)
    return { report: Delivery.check(logged, received), windowIds, resumes: server.resumes() }
  }).pipe(Effect.scoped)

describe("DeliveryChecker controls with real eventsource clients", () => {
  it.live("the correct server (subscribe with the cursor) delivers every event once, in order", () =>
    Effect.gen(function*() {
      const { report, resumes, windowIds } = yield* runControl("correct")
      assert.isTrue(report.ok, Delivery.describe(report))
      assert.isAtLeast(resumes, WINDOWS)
      assert.strictEqual(windowIds.length, WINDOWS * WINDOW_EVENTS)
    }), 30_000)

  it.live("negative control: a server that reads the log before subscribing is flagged: the window's events are lost", () =>
    Effect.gen(function*() {
      const { report, windowIds } = yield* runControl("read-then-subscribe")
      assert.isFalse(report.ok)
      assert.strictEqual(windowIds.length, WINDOWS * WINDOW_EVENTS)
      for (const id of windowIds) assert.include(report.lost, id, Delivery.describe(report))
      assert.deepStrictEqual([report.duplicated, report.outOfOrder, report.unknown], [[], [], []])
    }), 30_000)

  it.live("negative control: a server that resumes without the floor is flagged: replay and live overlap", () =>
    Effect.gen(function*() {
      const { report, windowIds } = yield* runControl("no-floor")
      assert.isFalse(report.ok)
      assert.strictEqual(windowIds.length, WINDOWS * WINDOW_EVENTS)
      for (const id of windowIds) assert.include(report.duplicated, id, Delivery.describe(report))
      assert.deepStrictEqual([report.lost, report.unknown], [[], []], Delivery.describe(report))
    }), 30_000)
})
