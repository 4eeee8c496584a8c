/**
 * The Node transport hands each stream's response to the route's central writer and lets the
 * request's fiber end at once. These tests prove the lifetimes that fiber no longer holds: the socket
 * closing frees the subscriber, a finished chunked stream frees it while its socket stays open for
 * the next request, shutdown drains every handed-over stream (and destroys one whose reader stopped,
 * at the drain deadline). About 6 s in all.
 */
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { startServer } from "../utils/server.js"
import { connect, openStream, type OpenStream, rawGet, reader, waitFor, waitForEffect } from "../utils/sse.js"

const SHUTDOWN_END = "event: end\ndata: {\"reason\":\"shutdown\"}\n\n"

/** Counts the requests whose fiber is still running (the middleware sees the whole handling). */
const inFlight = () => {
  const state = { running: 0, done: 0 }
  const middleware = HttpMiddleware.make((app) =>
    Effect.suspend(() => {
      state.running++
      return Effect.ensuring(app, Effect.sync(() => (state.running--, state.done++)))
    })
  )
  return { state, middleware }
}

const subscribers = (bus: { readonly stats: Effect.Effect<{ readonly subscribers: number }> }, n: number) =>
  waitForEffect(`${n} subscribers`, bus.stats, (s) => s.subscribers === n, 10_000)

describe("SseRoute hand-over of the Node response", () => {
  it.scopedLive("open streams hold no request fiber; each socket's close (FIN or RST) frees its subscriber", () =>
    Effect.gen(function*() {
      const { middleware, state } = inFlight()
      const { bus, route, url } = yield* startServer({ middleware })
      const streams: Array<OpenStream> = yield* Effect.forEach(
        Array.from({ length: 20 }),
        () => Effect.promise(() => openStream(`${url}/events?topic=t`)),
        { concurrency: 10 }
      )
      yield* waitForEffect("20 streams", route.connections, (n) => n === 20)
      yield* waitFor("every request's fiber to end", () => state.running === 0 && state.done === 20)
      yield* bus.publish({ topic: "t", data: "after the fibers ended" })
      yield* waitFor("every stream to get the event", () => streams.every((s) => s.text.includes("after the fibers ended")))

      streams.slice(0, 10).forEach((s) => s.close())
      yield* subscribers(bus, 10)
      assert.strictEqual(yield* route.connections, 10)
      const ports = yield* Effect.forEach(Array.from({ length: 10 }), () => Effect.promise(() => connect(Number(new URL(url).port))))
      const raws = ports.map((socket) => ({ socket, got: reader(socket) }))
      for (const { socket } of raws) socket.write(rawGet("/events?topic=t"))
      yield* subscribers(bus, 20)
      for (const { socket } of raws) socket.resetAndDestroy()
      streams.slice(10).forEach((s) => s.close())
      yield* subscribers(bus, 0)
      assert.strictEqual(yield* route.connections, 0)
      assert.strictEqual(state.running, 0)
    }), 30_000)

  it.scopedLive("a chunked stream that ends frees its subscriber at once; its socket serves the next request", () =>
    Effect.gen(function*() {
      const { bus, port, route } = yield* startServer({ route: { chunked: true, maxLifetime: "300 millis" } })
      const socket = yield* Effect.promise(() => connect(port))
      const got = reader(socket)
      socket.write(rawGet("/events?topic=k"))
      yield* waitFor("the first stream to end with its terminator", () => /event: end\n.*lifetime.*\n\n\r\n0\r\n\r\n$/s.test(got.text))
      yield* subscribers(bus, 0)
      assert.strictEqual(yield* route.connections, 0)
      assert.isFalse(got.closed, "the connection is kept alive")
      socket.write(rawGet("/events?topic=k"))
      yield* waitFor("a second response on the same socket", () => got.text.split("HTTP/1.1 200").length === 3)
      yield* subscribers(bus, 1)
      socket.destroy()
      yield* subscribers(bus, 0)
    }), 20_000)

  it.live("shutdown drains 50 handed-over streams and destroys a stopped reader at the drain deadline", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { middleware, state } = inFlight()
      const { bus, port, route, server, url } = yield* startServer({
        middleware,
        route: { drainTimeout: "1 second", maxBytes: 64 * 1024 * 1024, maxEvents: 1_000_000, stallTimeout: "1 hour" }
      }).pipe(Scope.extend(scope))
      const streams: Array<OpenStream> = yield* Effect.forEach(
        Array.from({ length: 50 }),
        () => Effect.promise(() => openStream(`${url}/events?topic=t`)),
        { concurrency: 10 }
      )
      // A reader that never reads: its socket fills, and its session cannot finish.
      const stopped = yield* Effect.promise(() => connect(port))
      stopped.on("error", () => {})
      let stoppedClosed = false
      stopped.on("close", () => (stoppedClosed = true))
      stopped.write(rawGet("/events?topic=s"))
      stopped.pause()
      yield* waitForEffect("51 streams", route.connections, (n) => n === 51)
      yield* waitFor("every request's fiber to end", () => state.running === 0)
      const big = "x".repeat(60_000)
      for (let i = 0; i < 200; i++) yield* bus.publish({ topic: "s", data: big })

      const started = Date.now()
      yield* Scope.close(scope, Exit.void)
      const closedIn = Date.now() - started
      yield* waitFor("every stream to end", () => streams.every((s) => s.ended), 5_000)
      assert.strictEqual(yield* route.connections, 0)
      stopped.resume() // a paused socket notices the reset only once it reads again
      yield* waitFor("the stopped reader's socket to be destroyed", () => stoppedClosed, 5_000)
      assert.strictEqual(streams.filter((s) => s.text.endsWith(SHUTDOWN_END)).length, 50)
      assert.isAtLeast(closedIn, 900, "shutdown waited for the stopped reader until the drain deadline")
      assert.isAtMost(closedIn, 5_000)
      assert.strictEqual((yield* bus.stats).subscribers, 0)
      assert.isFalse(server.listening)
    }), 30_000)
})
