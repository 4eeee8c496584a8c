/**
 * Hostile clients on real sockets: upgrade headers, pipelining, HEAD, a frozen peer. After each the
 * process is alive (any uncaught exception fails the run, see test/setup.ts), every subscription is
 * released and nothing stays buffered.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { resolve } from "../../src/internal/routeOptions.js"
import { startServer } from "../utils/server.js"
import { connect, rawGet, reader, request, sleepReal, waitForEffect } from "../utils/sse.js"

const UPGRADE = {
  Connection: "Upgrade",
  Upgrade: "websocket",
  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
  "Sec-WebSocket-Version": "13"
}

/** Collects what a raw socket receives. */
const settled = (bus: { readonly stats: Effect.Effect<{ subscribers: number; bufferedEvents: number; bufferedBytes: number }> }) =>
  waitForEffect(
    "every subscriber released and nothing buffered",
    bus.stats,
    (s) => s.subscribers === 0 && s.bufferedEvents === 0 && s.bufferedBytes === 0,
    10_000
  )

describe("SseRoute against hostile clients", () => {
  it.scopedLive("a GET with WebSocket upgrade headers, closed after 200 ms, neither crashes nor leaks", () =>
    Effect.gen(function*() {
      const { bus, port } = yield* startServer({ route: { heartbeat: "50 millis" } })
      const socket = yield* Effect.promise(() => connect(port))
      const got = reader(socket)
      socket.write(rawGet("/events?topic=x", UPGRADE))
      yield* waitForEffect("the upgraded stream to register", bus.stats, (s) => s.subscribers === 1)
      yield* sleepReal(200)
      assert.match(got.text, /^HTTP\/1\.1 200/)
      socket.end() // FIN: the next heartbeats would write to a socket whose peer is gone
      yield* sleepReal(300) // six heartbeat periods
      yield* settled(bus)

      // 500 of them, half closed by FIN and half by RST.
      const sockets = yield* Effect.forEach(Array.from({ length: 500 }), () => Effect.promise(() => connect(port)), {
        concurrency: 50
      })
      for (const s of sockets) {
        reader(s)
        s.write(rawGet("/events?topic=x", UPGRADE))
      }
      yield* waitForEffect("500 upgraded streams", bus.stats, (s) => s.subscribers === 500, 10_000)
      sockets.forEach((s, i) => (i % 2 === 0 ? s.end() : s.resetAndDestroy()))
      yield* sleepReal(200)
      yield* settled(bus)
    }), 30_000)

  it.scopedLive("5,000 pipelined GETs in one write subscribe once; closing the connection releases everything", () =>
    Effect.gen(function*() {
      // Node stops reading a socket whose queued responses pile up, so the server learns of the
      // client's close on its next write: a heartbeat at the latest.
      const { bus, port, route } = yield* startServer({ route: { heartbeat: "100 millis" } })
      const socket = yield* Effect.promise(() => connect(port))
      const got = reader(socket)
      socket.write(rawGet("/events?topic=p").repeat(5_000))
      yield* waitForEffect("the first stream", route.connections, (n) => n === 1)
      yield* sleepReal(300)
      const stats = yield* bus.stats
      assert.strictEqual(stats.subscribers, 1, "only the request that owns the socket subscribed")
      socket.destroy()
      yield* settled(bus)
      assert.strictEqual(yield* route.connections, 0)
      assert.match(got.text, /^HTTP\/1\.1 200/)
    }), 30_000)

  it.scopedLive("200 pipelined GETs with traffic on their topic leave no subscriber and no buffered event", () =>
    Effect.gen(function*() {
      const { bus, port } = yield* startServer({ route: { heartbeat: "100 millis" } })
      const socket = yield* Effect.promise(() => connect(port))
      reader(socket)
      socket.write(rawGet("/events?topic=p").repeat(200))
      yield* waitForEffect("the first stream", bus.stats, (s) => s.subscribers >= 1)
      for (let i = 0; i < 50; i++) yield* bus.publish({ topic: "p", data: `event ${i}` })
      yield* sleepReal(100)
      assert.strictEqual((yield* bus.stats).subscribers, 1)
      socket.destroy()
      yield* settled(bus)
      for (let i = 0; i < 50; i++) yield* bus.publish({ topic: "p", data: `after ${i}` })
      yield* settled(bus)
    }), 30_000)

  it.scopedLive("a stream pipelined behind an open stream never subscribes", () =>
    Effect.gen(function*() {
      const { bus, port } = yield* startServer({ route: { heartbeat: "100 millis" } })
      const socket = yield* Effect.promise(() => connect(port))
      const got = reader(socket)
      socket.write(rawGet("/events?topic=a") + rawGet("/events?topic=b"))
      yield* waitForEffect("the first stream", bus.stats, (s) => s.subscribers === 1)
      yield* sleepReal(100)
      assert.strictEqual((yield* bus.stats).subscribers, 1)
      assert.notInclude(got.text, "pipelined", "the refusal waits behind the open stream")
      socket.destroy()
      yield* settled(bus)
    }), 30_000)

  it.scopedLive("HEAD answers the stream's headers and subscribes nothing", () =>
    Effect.gen(function*() {
      const { bus, url } = yield* startServer()
      const res = yield* Effect.promise(() => request(`${url}/events?topic=t`, { method: "HEAD" }))
      assert.strictEqual(res.status, 200)
      assert.strictEqual(res.headers["content-type"], "text/event-stream")
      assert.strictEqual(res.body, "")
      const stats = yield* bus.stats
      assert.strictEqual(stats.subscribers, 0)
      assert.strictEqual(stats.resumes.live, 0, "nothing ever subscribed")
    }), 30_000)

  it.scopedLive("a frozen peer that still acknowledges is freed at the maximum lifetime", () =>
    Effect.gen(function*() {
      const { bus, port, route } = yield* startServer({
        route: { heartbeat: "20 millis", maxLifetime: "600 millis", writeDeadline: "200 millis" }
      })
      assert.strictEqual(route.options.maxLifetime, 600)
      const socket = yield* Effect.promise(() => connect(port))
      reader(socket)
      socket.write(rawGet("/events?topic=f"))
      yield* waitForEffect("the stream", bus.stats, (s) => s.subscribers === 1)
      socket.pause() // reads nothing more; the kernel still acknowledges the small heartbeats
      const started = Date.now()
      yield* waitForEffect("the frozen peer's subscriber freed", bus.stats, (s) => s.subscribers === 0, 5_000)
      const freedIn = Date.now() - started
      console.log(`[frozen peer] freed ${freedIn} ms after it froze (maxLifetime 600 ms, jittered down up to 15 %)`)
      assert.strictEqual((yield* bus.stats).ends.lifetime, 1)
      socket.destroy()
    }), 30_000)

  it.effect("the maximum lifetime is on by default: 10 minutes", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* resolve(undefined)).maxLifetime, 600_000)
      assert.strictEqual((yield* resolve({ maxLifetime: Duration.infinity })).maxLifetime, undefined)
    }))

  it.scopedLive("an upgraded socket's stream recovers from backpressure once its reader reads again", () =>
    Effect.gen(function*() {
      const { bus, port } = yield* startServer({ route: { heartbeat: "1 hour" }, bus: { maxBytes: 64 * 1024 * 1024 } })
      const socket = yield* Effect.promise(() => connect(port))
      const got = reader(socket)
      socket.write(rawGet("/events?topic=u", UPGRADE))
      yield* waitForEffect("the upgraded stream", bus.stats, (s) => s.subscribers === 1)
      socket.pause()
      const data = "x".repeat(60_000)
      for (let i = 0; i < 150; i++) yield* bus.publish({ topic: "u", data })
      yield* sleepReal(200)
      socket.resume()
      for (let i = 0; i < 5; i++) yield* bus.publish({ topic: "u", data: `marker ${i}` })
      yield* waitForEffect("every marker", Effect.sync(() => got.text), (t) => t.includes("marker 4"), 10_000)
      assert.strictEqual((yield* bus.stats).ends.stalled, 0)
      socket.destroy()
      yield* settled(bus)
    }), 30_000)

  it.scopedLive("a publish pipelined behind an open stream is refused and appends nothing", () =>
    Effect.gen(function*() {
      const { bus, port } = yield* startServer({ route: { publish: true, heartbeat: "100 millis" } })
      const socket = yield* Effect.promise(() => connect(port))
      reader(socket)
      const body = JSON.stringify({ topic: "p", data: "x" })
      socket.write(
        rawGet("/events?topic=p") +
          `POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`
      )
      yield* waitForEffect("the stream", bus.stats, (s) => s.subscribers === 1)
      yield* sleepReal(200)
      assert.strictEqual((yield* bus.stats).published, 0, "nothing appended for an answer that cannot arrive")
      socket.destroy()
      yield* settled(bus)
    }), 30_000)
})
