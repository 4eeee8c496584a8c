/**
 * Half-open peers: a stream goes through the TCP fault proxy (test/utils/faultProxy.ts), which then
 * stops forwarding silently: it stops reading from the server and writing to the client, and sends
 * no FIN and no RST to anyone. The proxy's kernel still acknowledges what fits in its buffers, as a
 * frozen peer or a dead middlebox would, so TCP keepalive cannot find it. The server must free the
 * subscriber and the socket within the documented bound (docs/http.md, docs/operations.md):
 *
 * - with traffic: once the kernel buffers are full the stream ends as `overflow` (a full buffer) or
 *   `stalled` (`stallTimeout` without draining), and its socket is destroyed `writeDeadline` later;
 * - without traffic (3-byte heartbeats never back a socket up): `maxLifetime` ends it.
 *
 * Short timings are configured; the test waits for events (subscriber count, the server socket's
 * `close`) within generous bounds. Runtime: about 10 s.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Net from "node:net"
import type * as SseRoute from "../../src/SseRoute.js"
import { startFaultProxy } from "../utils/faultProxy.js"
import { startServer } from "../utils/server.js"
import { openStreamScoped, sleepReal, waitFor, waitForEffect } from "../utils/sse.js"

const WRITE_DEADLINE = 500
const STALL_TIMEOUT = 1_000
const MAX_LIFETIME = 2_000
/** The upkeep runs every min(250 ms, …/4), so each timeout fires up to one period late; plus a loaded machine. */
const SLACK = 1_500
const DATA = "x".repeat(16 * 1024)

type StalledStream = Effect.Effect.Success<ReturnType<typeof stalledStream>>

/** A server, a proxy in front of it, and one stream through the proxy, then stalled by it. */
const stalledStream = (route: SseRoute.Options) =>
  Effect.gen(function*() {
    const server = yield* startServer({ route: { heartbeat: "200 millis", writeDeadline: `${WRITE_DEADLINE} millis`, ...route } })
    const closedAt = new Map<number, number>()
    server.server.on("connection", (socket: Net.Socket) => {
      const port = socket.remotePort!
      socket.once("close", () => closedAt.set(port, Date.now()))
    })
    const proxy = yield* startFaultProxy(server.port)
    const stream = yield* openStreamScoped(`${proxy.url}/events?topic=t`)
    assert.strictEqual(stream.status, 200)
    yield* waitForEffect("the subscriber", server.bus.stats, (s) => s.subscribers === 1)
    yield* waitFor("the stream's first bytes", () => stream.text.includes(": sluice"))
    const connection = proxy.connections[0]!
    const serverPort = connection.upstream.localPort!
    assert.isTrue(proxy.inject(connection, "stall"))
    const stalledAt = Date.now()
    const forwarded = connection.down
    return {
      ...server,
      stalledAt,
      /** When the server closed its side of the stream's connection. */
      socketClosedAt: () => closedAt.get(serverPort),
      /** Whether the proxy forwarded nothing to the client after the stall, and the client's stream is still open. */
      clientUntouched: () => connection.down === forwarded && !stream.ended
    }
  })

/** Publishes 16 KiB events every 2 ms (about 8 MB/s) until `stop()`. */
const publishUntil = (bus: { publish: (input: { topic: string; data: string }) => Effect.Effect<unknown, unknown> }, stop: () => boolean) =>
  Effect.gen(function*() {
    let published = 0
    while (!stop()) {
      yield* Effect.orDie(bus.publish({ topic: "t", data: DATA }))
      published++
      yield* sleepReal(2)
      assert.isBelow(published, 20_000, "the stream ended while events were published")
    }
    return published
  })

/**
 * Publishes into a stalled stream until it ends with `reason`; then waits for the subscriber to be
 * freed and the server socket to close, both within `writeDeadline` (plus upkeep and load slack) of
 * the end, and not before it: the end cannot be flushed, so the deadline is what closes the socket.
 */
const endUnderTraffic = (s: StalledStream, reason: "overflow" | "stalled") =>
  Effect.gen(function*() {
    let endedAt: number | undefined
    const watch = Effect.gen(function*() {
      yield* waitForEffect(reason, s.bus.stats, (st) => st.ends[reason] === 1, 20_000)
      endedAt = Date.now()
    })
    const [published] = yield* Effect.all([publishUntil(s.bus, () => endedAt !== undefined), watch], { concurrency: 2 })
    yield* waitForEffect("the subscriber to be freed", s.bus.stats, (st) => st.subscribers === 0, WRITE_DEADLINE + SLACK)
    const freedAfter = Date.now() - endedAt!
    yield* waitFor("the server socket to close", () => s.socketClosedAt() !== undefined, WRITE_DEADLINE + SLACK)
    const closeAfter = s.socketClosedAt()! - endedAt!
    const endAfter = endedAt! - s.stalledAt
    console.log(
      `[half-open ${reason}] ${published} events of 16 KiB published; ${reason} ${endAfter} ms after the proxy stopped, subscriber freed ` +
        `${freedAfter} ms and server socket closed ${closeAfter} ms after the end (writeDeadline ${WRITE_DEADLINE} ms)`
    )
    // The end is seen up to a poll late, hence the margin below.
    assert.isAtLeast(closeAfter, WRITE_DEADLINE - 250, "closed by the write deadline, not by the end")
    assert.isAtMost(closeAfter, WRITE_DEADLINE + SLACK)
    assert.isTrue(s.clientUntouched(), "the client got nothing after the stall")
    return { endAfter, stats: yield* s.bus.stats }
  })

describe("half-open peers through a proxy that stops forwarding silently", () => {
  it.scopedLive("with traffic past the buffer cap: ends as overflow, the socket is destroyed within writeDeadline", () =>
    Effect.gen(function*() {
      const s = yield* stalledStream({ maxBytes: 256 * 1024, maxEvents: 10_000, stallTimeout: "30 seconds", maxLifetime: "10 minutes" })
      const { stats } = yield* endUnderTraffic(s, "overflow")
      assert.strictEqual(stats.ends.stalled, 0)
    }), 40_000)

  it.scopedLive("with traffic within the buffer cap: ends as stalled after stallTimeout, the socket is destroyed within writeDeadline", () =>
    Effect.gen(function*() {
      const s = yield* stalledStream({
        maxBytes: 64 * 1024 * 1024,
        maxEvents: 100_000,
        stallTimeout: `${STALL_TIMEOUT} millis`,
        maxLifetime: "10 minutes"
      })
      const { endAfter, stats } = yield* endUnderTraffic(s, "stalled")
      assert.isAtLeast(endAfter, STALL_TIMEOUT, "not before stallTimeout")
      assert.strictEqual(stats.ends.overflow, 0)
    }), 40_000)

  it.scopedLive("without traffic: heartbeats alone never back the socket up; maxLifetime ends it and frees both", () =>
    Effect.gen(function*() {
      const s = yield* stalledStream({ maxLifetime: `${MAX_LIFETIME} millis`, stallTimeout: `${STALL_TIMEOUT} millis` })
      const bound = MAX_LIFETIME + WRITE_DEADLINE + SLACK
      yield* waitForEffect("the subscriber to be freed", s.bus.stats, (st) => st.subscribers === 0, bound)
      const freedAt = Date.now()
      yield* waitFor("the server socket to close", () => s.socketClosedAt() !== undefined, bound)
      const stats = yield* s.bus.stats
      console.log(
        `[half-open idle] subscriber freed ${freedAt - s.stalledAt} ms and server socket closed ${s.socketClosedAt()! - s.stalledAt} ms ` +
          `after the proxy stopped (maxLifetime ${MAX_LIFETIME} ms, jittered down up to 15 %; writeDeadline ${WRITE_DEADLINE} ms)`
      )
      assert.strictEqual(stats.ends.lifetime, 1, JSON.stringify(stats.ends))
      assert.strictEqual(stats.ends.stalled + stats.ends.overflow, 0, "heartbeats never stalled the stream")
      assert.isAtMost(s.socketClosedAt()! - s.stalledAt, bound)
      assert.isTrue(s.clientUntouched(), "the client got nothing after the stall")
    }), 40_000)
})
