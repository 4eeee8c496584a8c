import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Event from "../../src/Event.js"
import * as EventBus from "../../src/EventBus.js"
import * as EventLog from "../../src/EventLog.js"

const makeBus = Effect.gen(function*() {
  const log = yield* EventLog.makeMemory()
  return yield* EventBus.make().pipe(Effect.provideService(EventLog.EventLog, log))
})

const inputs = (n: number, topic = "t"): Array<Event.EventInput> =>
  Array.from({ length: n }, (_, i) => ({ topic, data: `e${i}` }))

const collect = <E>(stream: Stream.Stream<Event.Event, E>) =>
  Effect.map(Stream.runCollect(stream), (c) => Chunk.toArray(c).map((e) => e.data))

describe("EventBus.stream (eager)", () => {
  it.scoped("registers before it returns: fork the consumer, publish at once, every event arrives in order", () =>
    Effect.gen(function*() {
      const bus = yield* makeBus
      const events = yield* bus.stream({ topics: ["t"] })
      assert.strictEqual((yield* bus.stats).subscribers, 1, "registered before any pull")
      const consumer = yield* Effect.fork(collect(Stream.take(events, 50)))
      // no yield between fork and publish: the consumer has not run yet
      yield* bus.publishAll(inputs(20))
      yield* bus.publishAll(inputs(5, "other"))
      for (let i = 20; i < 50; i++) yield* bus.publish({ topic: "t", data: `e${i}` })
      assert.deepStrictEqual(yield* Fiber.join(consumer), Array.from({ length: 50 }, (_, i) => `e${i}`))
    }))

  it.scoped("sees what was published between getting the stream and running it; the lazy variant does not", () =>
    Effect.gen(function*() {
      const bus = yield* makeBus
      const eager = yield* bus.stream()
      const lazy = bus.streamLazy()
      yield* bus.publish({ topic: "t", data: "before the first pull" })
      const lazyFiber = yield* Effect.fork(collect(Stream.take(lazy, 1)))
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      assert.strictEqual((yield* bus.stats).subscribers, 2, "the lazy stream registered on its first pull")
      yield* bus.publish({ topic: "t", data: "after" })
      assert.deepStrictEqual(yield* collect(Stream.take(eager, 2)), ["before the first pull", "after"])
      assert.deepStrictEqual(yield* Fiber.join(lazyFiber), ["after"])
    }))

  it.scoped("a stream that stops early releases its subscription before the scope closes", () =>
    Effect.gen(function*() {
      const bus = yield* makeBus
      const events = yield* bus.stream()
      yield* bus.publishAll(inputs(3))
      assert.deepStrictEqual(yield* collect(Stream.take(events, 2)), ["e0", "e1"])
      const stats = yield* bus.stats
      assert.strictEqual(stats.subscribers, 0)
      assert.strictEqual(stats.bufferedEvents, 0)
      assert.strictEqual(stats.ends.closed, 1)
    }))

  it.effect("closing the scope ends the stream cleanly after what it holds, and unsubscribes", () =>
    Effect.gen(function*() {
      const busScope = yield* Scope.make()
      const bus = yield* Scope.extend(makeBus, busScope)
      const scope = yield* Scope.make()
      const events = yield* Scope.extend(bus.stream(), scope)
      yield* bus.publishAll(inputs(2))
      const consumer = yield* Effect.fork(collect(events))
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(yield* Fiber.join(consumer), ["e0", "e1"])
      assert.strictEqual((yield* bus.stats).subscribers, 0)
      yield* Scope.close(busScope, Exit.void)
    }))

  it.scoped("an invalid option fails the effect with a SubscribeError and registers nothing", () =>
    Effect.gen(function*() {
      const bus = yield* makeBus
      const error = yield* Effect.flip(bus.stream({ topics: ["a b"] }))
      assert.strictEqual(error.reason, "InvalidTopic")
      const option = yield* Effect.flip(bus.stream({ maxEvents: 0 }))
      assert.strictEqual(option.reason, "InvalidOption")
      assert.strictEqual((yield* bus.stats).subscribers, 0)
    }))
})
