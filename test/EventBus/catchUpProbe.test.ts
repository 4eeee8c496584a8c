/**
 * Randomized resumes (every topic, a topic set, a filter, both; valid, live and invalid cursors; a
 * log that trims) whose every log call first publishes a burst, so live buffers fill during the
 * first scan and during the replay and catch up from the log: each subscriber gets a prefix of its
 * filtered log in order (all of it when it was not ended early), and the hub's buffered counts
 * return to zero. 300 rounds, about 4 s.
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
import { seeded, testSeed } from "../utils/random.js"

const inputs = (rand: () => number, n: number): Array<Event.EventInput> =>
  Array.from({ length: n }, (_, i) => ({ topic: rand() < 0.5 ? "a" : "b", data: `e${i}${"x".repeat(Math.floor(rand() * 40))}` }))

describe("catch-up probe", () => {
  it.effect("random resumes with bursts during every log call: each subscriber gets a prefix of its filtered log", () =>
    Effect.gen(function*() {
      const seed = testSeed()
      const random = seeded(seed)
      const rand = () => random.next()
      const tally: Record<string, number> = {}
      let caught = 0
      for (let round = 0; round < 300; round++) {
        const inner = yield* EventLog.makeMemory({ maxEvents: rand() < 0.5 ? 10_000 : 200 + Math.floor(rand() * 800) })
        const published: Array<Event.Event> = []
        let bus: EventBus.EventBus["Type"] | undefined
        let bursts = 1 + Math.floor(rand() * 15)
        const burst = Effect.suspend(() =>
          bursts-- > 0 ? Effect.map(Effect.orDie(bus!.publishAll(inputs(rand, Math.floor(rand() * 80)))), (es) => void published.push(...es)) : Effect.void
        )
        const log = EventLog.EventLog.of({
          ...inner,
          head: Effect.zipRight(burst, inner.head),
          read: (after, o) => Effect.zipRight(burst, inner.read(after, o))
        })
        bus = yield* EventBus.make({ maxReplay: 100 + Math.floor(rand() * 1500), maxEvents: 5 + Math.floor(rand() * 40), maxBytes: 300 + Math.floor(rand() * 3000) }).pipe(
          Effect.provideService(EventLog.EventLog, log)
        )
        const stored = yield* bus.publishAll(inputs(rand, 1 + Math.floor(rand() * 600)))
        published.push(...stored)
        const kind = Math.floor(rand() * 4)
        const filter = kind >= 2 ? (e: Event.Event) => e.data.length % 2 === 0 : undefined
        const topics = kind % 2 === 1 ? ["a"] : undefined
        const at = Math.floor(rand() * (stored.length + 3))
        const after = at === stored.length + 2 ? "nonsense" : at === stored.length + 1 ? undefined : at === 0 ? `${stored[0]!.id.epoch}-0` : stored[at - 1]!.id
        const sub = yield* bus.subscribe({ after, topics, filter })
        const received: Array<Event.Event> = []
        const fiber = yield* Effect.fork(Stream.runForEachChunk(sub.events, (c) => Effect.sync(() => received.push(...Chunk.toArray(c)))))
        const s = inspectSubscriber(sub)
        for (let i = 0; i < 10_000 && !(bursts <= 0 && s.replay === undefined && s.buffered === 0) && s.endReason === undefined; i++) yield* Effect.yieldNow()
        yield* sub.end("closed")
        yield* Fiber.join(fiber)
        const reason = yield* sub.ended
        const start = sub.outcome._tag === "Resumed" ? sub.outcome.after.seq : sub.outcome.head.seq
        const expected = published.filter((e) => e.id.seq > start && (topics === undefined || e.topic === "a") && (filter === undefined || filter(e))).map((e) => e.id.seq)
        const got = received.map((e) => e.id.seq)
        const ctx = `seed ${seed} round ${round} kind ${kind} outcome ${sub.outcome._tag} reason ${reason} start ${start}`
        assert.deepStrictEqual(got, expected.slice(0, got.length), `${ctx}: a prefix`)
        if (reason === "closed") assert.strictEqual(got.length, expected.length, `${ctx}: everything`)
        const stats = yield* bus.stats
        tally[reason] = (tally[reason] ?? 0) + 1
        if (got.length > 0 && sub.outcome._tag !== "Live") caught++
        assert.strictEqual(stats.bufferedEvents, 0, `${ctx}: buffered events`)
        assert.strictEqual(stats.bufferedBytes, 0, `${ctx}: buffered bytes`)
      }
      assert.isAbove(caught, 0, `seed ${seed}: some resume delivered events`)
    }).pipe(Effect.scoped))
})
