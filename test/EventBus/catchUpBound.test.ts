/**
 * The catch-up of a resume (a live buffer that fills before the replay is out) is bounded by
 * `maxReplay`: every event the raised floor skips counts, not only those the buffer held.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import type * as Event from "../../src/Event.js"
import * as EventBus from "../../src/EventBus.js"
import * as EventLog from "../../src/EventLog.js"
import { inspectSubscriber } from "../../src/internal/eventBus.js"

const inputs = (n: number, from = 0): Array<Event.EventInput> =>
  Array.from({ length: n }, (_, i) => ({ topic: "t", data: `e${from + i}` }))

describe("EventBus catch-up bound", () => {
  it.scoped("one large batch during a resume's scan catches up at most maxReplay more events", () =>
    Effect.gen(function*() {
      const inner = yield* EventLog.makeMemory()
      let bus: EventBus.EventBus["Type"] | undefined
      let once = true
      // the first read (the resume's scan) publishes one batch of 3,000 live events first
      const log = EventLog.EventLog.of({
        ...inner,
        read: (after, o) =>
          Effect.zipRight(
            once ? (once = false, Effect.asVoid(Effect.orDie(bus!.publishAll(inputs(3_000, 1_000))))) : Effect.void,
            inner.read(after, o)
          )
      })
      bus = yield* EventBus.make({ maxReplay: 200, maxEvents: 10 }).pipe(Effect.provideService(EventLog.EventLog, log))
      const stored = yield* bus.publishAll(inputs(100))
      const sub = yield* bus.subscribe({ after: stored[49]!.id })
      const received: Array<Event.Event> = []
      const fiber = yield* Effect.fork(Stream.runForEachChunk(sub.events, (c) => Effect.sync(() => received.push(...Chunk.toArray(c)))))
      const s = inspectSubscriber(sub)
      for (let i = 0; i < 10_000 && !(s.replay === undefined && s.buffered === 0); i++) yield* Effect.yieldNow()
      const reason = s.endReason
      yield* sub.end("closed")
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(received.map((e) => e.id.seq), Array.from({ length: received.length }, (_, i) => 51 + i), "in order")
      assert.isAtMost(received.length, 50 + 200 + 10, `delivered ${received.length} events: the catch-up went past maxReplay (200)`)
      assert.strictEqual(reason, "overflow", "3,000 events behind the floor are more than the allowance")
    }))
})
