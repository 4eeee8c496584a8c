/**
 * The route's behaviour, on both transports (Node and portable) and on the `TestClock`: heartbeats,
 * the maximum lifetime, overflow and resume each proven deterministically, with the time they take
 * set by the test, never by the machine's speed.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Event from "../../src/Event.js"
import * as TestClock from "effect/TestClock"
import { type Reader, transports } from "../utils/transports.js"
import { startServer } from "../utils/server.js"
import { connect, rawGet, sleepReal, waitFor, waitForEffect } from "../utils/sse.js"

const OPENING = /^retry: \d+\n: sluice\n\n/
const heartbeats = (r: Reader) => r.text().split(":\n\n").length - 1

for (const transport of transports) {
  describe(`SseRoute behaviour (${transport.name})`, () => {
    it.scoped("a heartbeat after each quiet heartbeat period, none before", () =>
      Effect.gen(function*() {
        const { open } = yield* transport.start({ route: { heartbeat: "15 seconds" } })
        const stream = yield* open("/events?topic=t")
        yield* waitFor("the opening bytes", () => OPENING.test(stream.text()))
        yield* TestClock.adjust("14 seconds")
        assert.strictEqual(heartbeats(stream), 0)
        yield* TestClock.adjust("1 second")
        yield* waitFor("the first heartbeat", () => heartbeats(stream) === 1)
        yield* TestClock.adjust("15 seconds")
        yield* waitFor("the second heartbeat", () => heartbeats(stream) === 2)
        assert.deepStrictEqual(stream.parsed().events, [])
      }))

    it.scoped("the maximum lifetime (jittered down at most 15 %) ends the stream as lifetime", () =>
      Effect.gen(function*() {
        const { bus, open } = yield* transport.start({ route: { heartbeat: "1 hour", maxLifetime: "20 seconds" } })
        const stream = yield* open("/events?topic=t")
        yield* waitFor("the opening bytes", () => OPENING.test(stream.text()))
        yield* TestClock.adjust("16 seconds") // under 85 % of 20 s
        assert.isFalse(stream.text().includes("event: end"))
        yield* TestClock.adjust("4 seconds")
        yield* waitFor("the end frame and the end of the stream", () => stream.ended())
        assert.isTrue(stream.text().endsWith("event: end\ndata: {\"reason\":\"lifetime\"}\n\n"))
        assert.strictEqual((yield* bus.stats).ends.lifetime, 1)
      }))

    it.scoped("a burst over the connection's buffer ends it as overflow after what it holds is sent", () =>
      Effect.gen(function*() {
        const { bus, open } = yield* transport.start({ route: { maxEvents: 10, heartbeat: "1 hour" } })
        const stream = yield* open("/events?topic=t")
        yield* waitFor("the opening bytes", () => OPENING.test(stream.text()))
        // one synchronous batch: the fan-out buffers 10 and ends the subscriber at the 11th
        const published = yield* bus.publishAll(Array.from({ length: 11 }, (_, i) => ({ topic: "t", data: `e${i}` })))
        yield* waitFor("the end of the stream", () => stream.ended())
        const { events } = stream.parsed()
        assert.deepStrictEqual(events.map((e) => e.id), [...published.slice(0, 10).map((e) => Event.formatId(e.id)), undefined])
        assert.deepStrictEqual(JSON.parse(events[10]!.data), { reason: "overflow" })
        assert.strictEqual((yield* bus.stats).ends.overflow, 1)
      }))

    it.scoped("a resume replays exactly the matching events after the cursor, then live ones", () =>
      Effect.gen(function*() {
        const { bus, open } = yield* transport.start({ route: { heartbeat: "1 hour" } })
        const before = yield* bus.publishAll(Array.from({ length: 5 }, (_, i) => ({ topic: i % 2 ? "t" : "u", data: `b${i}` })))
        const stream = yield* open("/events?topic=t", { "last-event-id": Event.formatId(before[0]!.id) })
        yield* waitFor("the replay", () => stream.parsed().events.length === 2)
        const live = yield* bus.publish({ topic: "t", data: "live" })
        yield* waitFor("the live event", () => stream.parsed().events.length === 3)
        assert.deepStrictEqual(
          stream.parsed().events.map((e) => e.data),
          ["b1", "b3", "live"]
        )
        assert.strictEqual(stream.parsed().events[2]!.id, Event.formatId(live.id))
      }))
  })
}

describe("SseRoute behaviour (node sockets)", () => {
  it.scoped("a reader that stops is ended as stalled after stallTimeout, and reset after writeDeadline", () =>
    Effect.gen(function*() {
      const { bus, port } = yield* startServer({
        bus: { maxBytes: 64 * 1024 * 1024, maxEvents: 100_000 },
        route: { heartbeat: "1 hour", stallTimeout: "30 seconds", writeDeadline: "10 seconds" }
      })
      const socket = yield* Effect.promise(() => connect(port))
      let closed = false
      socket.on("close", () => (closed = true))
      socket.on("error", () => {})
      socket.write(rawGet("/events?topic=big"))
      yield* waitForEffect("the stream", bus.stats, (s) => s.subscribers === 1)
      socket.pause()
      // 16 MB: more than the kernel and Node buffer for a reader that stopped
      const data = "x".repeat(64 * 1024)
      for (let i = 0; i < 256; i++) yield* bus.publish({ topic: "big", data })
      yield* sleepReal(200)
      yield* TestClock.adjust("29 seconds")
      assert.strictEqual((yield* bus.stats).ends.stalled, 0)
      yield* TestClock.adjust("2 seconds")
      yield* waitForEffect("the stall", bus.stats, (s) => s.ends.stalled === 1)
      yield* TestClock.adjust("9 seconds")
      yield* sleepReal(50)
      assert.strictEqual((yield* bus.stats).subscribers, 1, "not before the write deadline")
      yield* TestClock.adjust("2 seconds")
      yield* waitForEffect("the subscriber released by the write deadline", bus.stats, (s) => s.subscribers === 0)
      socket.resume() // a paused socket notices the reset once it reads again
      yield* waitFor("the client to see its connection reset", () => closed)
    }))
})
