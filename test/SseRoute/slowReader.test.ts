/**
 * A peer that stops reading while events flow: its subscription ends as `overflow` (bounded in
 * bytes) or, with room to spare, as `stalled`; since its socket never drains, the write deadline
 * destroys the response.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Http from "node:http"
import type * as Event from "../../src/Event.js"
import { startServer } from "../utils/server.js"
import { connect, rawGet, sleepReal, waitFor, waitForEffect } from "../utils/sse.js"

const MAX_BYTES = 64 * 1024
const WRITE_DEADLINE = 500

describe("SseRoute slow readers", () => {
  it.scopedLive("a paused reader overflows, stays bounded, and is destroyed within the write deadline", () =>
    Effect.gen(function*() {
      const { bus, port, route, server } = yield* startServer({
        route: { maxBytes: MAX_BYTES, maxEvents: 10_000, writeDeadline: `${WRITE_DEADLINE} millis`, heartbeat: "1 second" }
      })
      let response: Http.ServerResponse | undefined
      let destroyedAt: number | undefined
      server.prependListener("request", (_req: Http.IncomingMessage, res: Http.ServerResponse) => {
        response = res
        res.on("close", () => {
          destroyedAt = Date.now()
        })
      })

      const socket = yield* Effect.acquireRelease(
        Effect.promise(() => connect(port)),
        (s) => Effect.sync(() => s.destroy())
      )
      let clientClosed = false
      socket.on("close", () => {
        clientClosed = true
      })
      socket.on("error", () => {})
      socket.pause() // never reads: the kernel buffers fill, then the server's response stops draining
      socket.write(rawGet("/events?topic=t"))
      yield* waitForEffect("the stream to open", route.connections, (n) => n === 1)

      const data = "x".repeat(1024)
      const batch: Array<Event.EventInput> = Array.from({ length: 16 }, () => ({ topic: "t", data }))
      let maxBuffered = 0
      let maxWritable = 0
      let published = 0
      let overflowAt: number | undefined
      const started = Date.now()
      while (overflowAt === undefined && Date.now() - started < 20_000) {
        yield* bus.publishAll(batch)
        published += batch.length
        const stats = yield* bus.stats
        maxBuffered = Math.max(maxBuffered, stats.bufferedBytes)
        maxWritable = Math.max(maxWritable, response?.writableLength ?? 0)
        if (stats.ends.overflow > 0) overflowAt = Date.now()
        else yield* sleepReal(1)
      }
      assert.isDefined(overflowAt, "the paused reader's subscription overflowed")
      assert.isUndefined(destroyedAt, "the socket is still open right after the overflow")

      yield* waitFor("the server to destroy the response", () => destroyedAt !== undefined, 5_000)
      const destroyAfter = destroyedAt! - overflowAt!
      const stats = yield* waitForEffect("the subscriber to be released", bus.stats, (s) => s.subscribers === 0)
      assert.strictEqual(yield* route.connections, 0)

      // The client sees the close once it reads what the kernel still holds: no end frame, no terminator.
      let tail = ""
      socket.on("data", (chunk: Buffer) => {
        tail = (tail + chunk.toString("latin1")).slice(-256)
      })
      socket.resume()
      yield* waitFor("the client socket to close", () => clientClosed, 5_000)

      console.log(
        `[paused reader] overflow after ${published} × 1 KiB events (${overflowAt! - started} ms); ` +
          `destroyed ${destroyAfter} ms after the overflow (writeDeadline ${WRITE_DEADLINE} ms); ` +
          `max bufferedBytes ${maxBuffered} (cap ${MAX_BYTES}); max res.writableLength ${maxWritable}; ` +
          `client read ${socket.bytesRead} bytes`
      )
      assert.strictEqual(stats.ends.overflow, 1)
      assert.notInclude(tail, "event: end", "the end frame could not be written")
      assert.isFalse(tail.endsWith("0\r\n\r\n"), "destroyed: no chunked terminator")
      assert.isAtMost(maxBuffered, MAX_BYTES, "the subscriber buffer never exceeded its byte cap")
      // Node's own buffer holds at most one drained batch above its high-water mark.
      assert.isAtMost(maxWritable, response!.writableHighWaterMark + MAX_BYTES + 2048)
      assert.isAtLeast(destroyAfter, WRITE_DEADLINE - 50, "destroyed by the write deadline, not earlier")
      assert.isAtMost(destroyAfter, WRITE_DEADLINE + 1_000, "destroyed within the write deadline plus upkeep ticks")
    }), 30_000)

  it.scopedLive("a paused reader with room to spare is ended as stalled, then destroyed by the write deadline", () =>
    Effect.gen(function*() {
      const STALL = 300
      const { bus, port, route, server } = yield* startServer({
        route: {
          maxBytes: 64 * 1024 * 1024,
          maxEvents: 1_000_000,
          stallTimeout: `${STALL} millis`,
          writeDeadline: `${WRITE_DEADLINE} millis`
        }
      })
      let destroyedAt: number | undefined
      server.prependListener("request", (_req: Http.IncomingMessage, res: Http.ServerResponse) => {
        res.on("close", () => {
          destroyedAt = Date.now()
        })
      })
      const socket = yield* Effect.acquireRelease(Effect.promise(() => connect(port)), (s) => Effect.sync(() => s.destroy()))
      socket.on("error", () => {})
      socket.pause()
      socket.write(rawGet("/events?topic=t"))
      yield* waitForEffect("the stream to open", route.connections, (n) => n === 1)

      const data = "x".repeat(1024)
      const batch: Array<Event.EventInput> = Array.from({ length: 16 }, () => ({ topic: "t", data }))
      let stalledAt: number | undefined
      const started = Date.now()
      while (stalledAt === undefined && Date.now() - started < 20_000) {
        yield* bus.publishAll(batch)
        if ((yield* bus.stats).ends.stalled > 0) stalledAt = Date.now()
        else yield* sleepReal(2)
      }
      assert.isDefined(stalledAt, "the paused reader was ended as stalled")
      yield* waitFor("the server to destroy the response", () => destroyedAt !== undefined, 5_000)
      const stats = yield* waitForEffect("the subscriber to be released", bus.stats, (s) => s.subscribers === 0)
      console.log(
        `[stalled reader] stalled after ${stalledAt! - started} ms (stallTimeout ${STALL} ms); ` +
          `destroyed ${destroyedAt! - stalledAt!} ms later (writeDeadline ${WRITE_DEADLINE} ms)`
      )
      assert.strictEqual(stats.ends.stalled, 1)
      assert.strictEqual(stats.ends.overflow, 0)
      assert.strictEqual(stats.bufferedBytes, 0, "its buffer was released")
      assert.isAtMost(destroyedAt! - stalledAt!, WRITE_DEADLINE + 1_000)
      assert.strictEqual(yield* route.connections, 0)
    }), 30_000)
})
