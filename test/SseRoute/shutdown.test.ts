/**
 * Shutdown: closing the scope that holds the server and the route ends every open stream cleanly
 * (`event: end` with reason `shutdown`, then the chunked terminator) and completes promptly; a request
 * that arrives while the route drains gets a clean end too, never an error status.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { startServer } from "../utils/server.js"
import { openStream, type OpenStream, request, waitFor, waitForEffect } from "../utils/sse.js"

const STREAMS = 100
const SHUTDOWN_END = "event: end\ndata: {\"reason\":\"shutdown\"}\n\n"

describe("SseRoute shutdown", () => {
  it.live("closing the server scope with 100 open streams ends each cleanly, within the drain timeout", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { bus, route, server, url } = yield* startServer().pipe(Scope.extend(scope))
      const streams: Array<OpenStream> = yield* Effect.forEach(
        Array.from({ length: STREAMS }),
        () => Effect.promise(() => openStream(`${url}/events?topic=t`)),
        { concurrency: 20 }
      )
      yield* waitForEffect("every stream to be open", route.connections, (n) => n === STREAMS)
      yield* bus.publish({ topic: "t", data: "before shutdown" })
      yield* waitFor("every stream to get the event", () => streams.every((s) => s.text.includes("before shutdown")))

      const started = Date.now()
      yield* Scope.close(scope, Exit.void)
      const closedIn = Date.now() - started
      yield* waitFor("every client to see the end of its response", () => streams.every((s) => s.ended), 10_000)

      const clean = streams.filter((s) => s.complete && s.text.endsWith(SHUTDOWN_END)).length
      console.log(`[shutdown] ${STREAMS} open streams: scope closed in ${closedIn} ms; ${clean} ended cleanly`)
      // Clean ends for all 100 prove the drain finished inside its 1 s timeout (past it, what is left is
      // destroyed); the time bound only guards against a hang, generous for a loaded machine.
      assert.isAtMost(closedIn, 10_000)
      assert.strictEqual(clean, STREAMS, "each stream got event: end (shutdown) and the chunked terminator")
      for (const s of streams) {
        const ends = s.parsed().events.filter((e) => e.event === "end")
        assert.deepStrictEqual(ends.map((e) => e.id), [undefined], "one end frame, and it carries no id")
      }
      assert.isFalse(server.listening)
    }), 20_000)

  it.scopedLive("a request that arrives while the route drains gets 200, retry and a clean end", () =>
    Effect.gen(function*() {
      const { bus, route, url } = yield* startServer({ route: { retryMin: "2 seconds", retryMax: "3 seconds" } })
      const open = yield* Effect.promise(() => openStream(`${url}/events`))
      yield* waitForEffect("the stream to open", route.connections, (n) => n === 1)
      yield* route.drain
      yield* waitFor("the open stream to end", () => open.ended)
      assert.isTrue(open.complete)
      assert.isTrue(open.text.endsWith(SHUTDOWN_END))

      const late = yield* Effect.promise(() => request(`${url}/events`))
      assert.strictEqual(late.status, 200)
      assert.strictEqual(late.headers["content-type"], "text/event-stream")
      assert.strictEqual(late.headers.connection, "close")
      assert.isTrue(late.complete)
      const retry = Number(/^retry: (\d+)\n/.exec(late.body)?.[1])
      assert.isAtLeast(retry, 2_000)
      assert.isAtMost(retry, 3_000)
      assert.isTrue(late.body.endsWith(SHUTDOWN_END))
      assert.strictEqual((yield* bus.stats).subscribers, 0)
    }), 20_000)
})
