import { assert, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Stream } from "effect"
import * as EventBus from "../src/EventBus.js"

it.scoped("smoke", () =>
  Effect.gen(function*() {
    const bus = yield* EventBus.EventBus
    const sub = yield* bus.subscribe({ topics: ["a/*"] })
    const fiber = yield* Stream.runCollect(Stream.take(sub.events, 3)).pipe(Effect.fork)
    yield* bus.publish({ topic: "a/1", data: "x" })
    yield* bus.publish({ topic: "b/1", data: "y" })
    yield* bus.publishAll([{ topic: "a/2", data: "z" }, { topic: "a/3", data: "w", type: "t" }])
    const got = yield* Fiber.join(fiber)
    assert.deepStrictEqual(Chunk.toArray(got).map((e) => e.data), ["x", "z", "w"])
    const sub2 = yield* bus.subscribe({ after: `${got.pipe(Chunk.unsafeGet(0)).id.epoch}-1` })
    assert.strictEqual(sub2.outcome._tag, "Resumed")
    assert.deepStrictEqual(sub2.replay.map((e) => e.data), ["y", "z", "w"])
    const stats = yield* bus.stats
    assert.strictEqual(stats.subscribers, 2)
  }).pipe(Effect.provide(EventBus.layerMemory())))
