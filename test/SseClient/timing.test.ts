/**
 * The client's timing on the TestClock (with a seeded Random) against real loopback servers:
 * repeated immediate ends back off exponentially with full jitter, capped, never in a hot loop; a
 * silent connection (no heartbeat, or no answer at all) is replaced after the idle timeout, and
 * bytes restart that timeout. The clock is moved only once the client sleeps, so every step is
 * decided by events, not by wall-clock luck.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as SseClient from "../../src/SseClient.js"
import { sseHead, startRawServer } from "../utils/rawServer.js"
import { sleepingUntil } from "../utils/testClock.js"
import { waitFor } from "../utils/sse.js"

interface Seen {
  readonly at: number
  readonly item: SseClient.Item | SseClient.Status
}

/** Runs the client in a fiber, recording each item with the (test) time it arrived. */
const run = (url: string, options: SseClient.Options, layer: Layer.Layer<HttpClient.HttpClient> = FetchHttpClient.layer) =>
  Effect.gen(function*() {
    const seen: Array<Seen> = []
    const fiber = yield* SseClient.streamWithStatus(url, options).pipe(
      Stream.runForEach((item) => Effect.map(Clock.currentTimeMillis, (at) => void seen.push({ at, item }))),
      Effect.provide(layer),
      Effect.withRandom(Random.make("sluice-client-backoff")),
      Effect.fork
    )
    return { fiber, seen }
  })

const disconnects = (seen: ReadonlyArray<Seen>) =>
  seen.flatMap((s) => s.item._tag === "Disconnected" ? [{ at: s.at, ...s.item }] : [])

describe("SseClient timing", () => {
  it.scoped("100 immediate ends: reconnects spaced by capped, fully jittered exponential backoff", () =>
    Effect.gen(function*() {
      // The worst server: retry 0 and an immediate end, every time.
      const server = yield* startRawServer((r) => {
        sseHead(r.res)
        r.res.end("retry: 0\n\n")
      })
      const { fiber, seen } = yield* run(server.url, { idleTimeout: Duration.infinity })
      for (let k = 1; k <= 100; k++) {
        yield* waitFor(`disconnect ${k}`, () => disconnects(seen).length >= k)
        const { delay } = disconnects(seen)[k - 1]!
        if (delay > 0) {
          yield* sleepingUntil((yield* TestClock.currentTimeMillis) + delay)
          yield* TestClock.adjust(delay)
        }
      }
      yield* waitFor("connection 101", () => server.requests.length === 101)
      yield* Fiber.interrupt(fiber)

      const ends = disconnects(seen).slice(0, 100)
      const connects = seen.filter((s) => s.item._tag === "Connected").map((s) => s.at)
      assert.strictEqual(connects.length, 101)
      assert.deepStrictEqual(ends.map((d) => d.failures), Array.from({ length: 100 }, (_, i) => i + 1))
      assert.isTrue(ends.every((d) => d.cause._tag === "End"))
      // Each wait lies in [retry, retry + min(30 s, 1 s * 2^(failures-1))), retry being 0 here.
      for (const d of ends) assert.isBelow(d.delay, Math.min(30_000, 1_000 * 2 ** (d.failures - 1)), `failure ${d.failures}`)
      // Full jitter: the waits differ; once capped they spread over the whole cap.
      assert.isAtLeast(new Set(ends.map((d) => d.delay)).size, 95)
      const capped = ends.slice(10).map((d) => d.delay)
      assert.isBelow(Math.min(...capped), 6_000)
      assert.isAbove(Math.max(...capped), 24_000)
      // No hot loop: after the first few, at most one reconnect per second on average (here ~15 s).
      const perReconnect = (connects[100]! - connects[5]!) / 95
      console.log(
        `[client backoff] 100 immediate ends: first waits ${ends.slice(0, 6).map((d) => d.delay).join(", ")} ms; ` +
          `${Math.round(perReconnect)} ms per reconnect after the 5th; ${connects[100]! / 1000} s (test clock) in all`
      )
      assert.isAtLeast(perReconnect, 1_000)
      // Real connections, each waited for: the server saw 101 requests, not more.
      assert.strictEqual(server.requests.length, 101)
    }))

  for (const [name, layer] of [["fetch", FetchHttpClient.layer], ["node", NodeHttpClient.layer]] as const) {
    it.scoped(`${name}: a silent server is replaced after the idle timeout; bytes restart it`, () =>
      Effect.gen(function*() {
        const server = yield* startRawServer((r) => {
          if (r.index === 0) return // never answers
          sseHead(r.res)
          r.res.write("retry: 100\n: open\n\n")
        })
        const { fiber, seen } = yield* run(server.url, { heartbeat: "1 second" }, layer) // idle after 3 s

        // No answer at all: the request is abandoned after 3 s.
        yield* waitFor("request 1", () => server.requests.length === 1)
        yield* sleepingUntil(3_000)
        yield* TestClock.adjust("3 seconds")
        yield* waitFor("disconnect 1", () => disconnects(seen).length === 1)
        const first = disconnects(seen)[0]!
        assert.deepStrictEqual([first.at, first.cause], [3_000, { _tag: "Idle" }])
        yield* waitFor("request 1's socket to close", () => server.requests[0]!.closed)

        // An answer, then silence: after the wait, a new connection that the server answers.
        yield* sleepingUntil(3_000 + first.delay)
        yield* TestClock.adjust(first.delay)
        yield* waitFor("request 2", () => server.requests.length === 2)
        const opened = 3_000 + first.delay
        yield* sleepingUntil(opened + 3_000)
        // Bytes at +2 s (an event, so the test can see the client read them) restart the window:
        // the check due at +3 s finds 1 s of silence and waits until +5 s.
        yield* TestClock.adjust("2 seconds")
        server.requests[1]!.res.write("data: beat\n\n")
        yield* waitFor("the event", () => seen.some((s) => s.item._tag === "Message"))
        yield* TestClock.adjust("2 seconds")
        yield* sleepingUntil(opened + 5_000)
        assert.strictEqual(disconnects(seen).length, 1, "not idle 4 s after opening: bytes came at 2 s")
        yield* TestClock.adjust("1 second")
        yield* waitFor("disconnect 2", () => disconnects(seen).length === 2)
        const second = disconnects(seen)[1]!
        assert.deepStrictEqual([second.at, second.cause], [opened + 5_000, { _tag: "Idle" }])
        assert.isAtLeast(second.delay, 100, "the server's retry, plus backoff")
        yield* waitFor("request 2's socket to close", () => server.requests[1]!.closed)

        yield* sleepingUntil(opened + 5_000 + second.delay)
        yield* TestClock.adjust(second.delay)
        yield* waitFor("request 3", () => server.requests.length === 3)
        yield* Fiber.interrupt(fiber)
        yield* waitFor("request 3's socket to close", () => server.requests[2]!.closed)
      }))
  }

  it.scoped("Retry-After on 429 and 503 (seconds or HTTP date, capped) replaces the backoff; still retried", () =>
    Effect.gen(function*() {
      // The TestClock starts at the epoch: a date 20 s after it is 20 s from the start of the test.
      const answers: ReadonlyArray<readonly [number, Record<string, string>]> = [
        [503, { "retry-after": "7" }],
        [429, { "retry-after": "Thu, 01 Jan 1970 00:00:20 GMT" }],
        [503, { "retry-after": "86400" }], // a day: capped at maxRetryAfter
        [429, { "retry-after": "Thu, 01 Jan 1970 00:00:01 GMT" }], // in the past: at once
        [503, { "retry-after": "soon" }], // unreadable: the backoff
        [500, { "retry-after": "5" }] // only 429 and 503 are read
      ]
      const server = yield* startRawServer((r) => {
        const answer = answers[r.index]
        if (answer !== undefined) return r.res.writeHead(answer[0], answer[1]).end()
        sseHead(r.res)
        r.res.write("id: e-1\ndata: up\n\n")
      })
      const { fiber, seen } = yield* run(server.url, { retry: "1 second", maxRetryAfter: "40 seconds" })
      const waits: Array<number> = []
      for (let k = 1; k <= answers.length; k++) {
        yield* waitFor(`disconnect ${k}`, () => disconnects(seen).length >= k)
        const d = disconnects(seen)[k - 1]!
        waits.push(d.delay)
        const now = yield* TestClock.currentTimeMillis
        if (d.delay > 0) {
          yield* sleepingUntil(now + d.delay)
          yield* TestClock.adjust(d.delay - 1)
          assert.strictEqual(server.requests.length, k, `no request before the wait ${k} is over`)
          yield* TestClock.adjust(1)
        }
        // (After a wait of 0 the next answer, and the request after it, may come at once.)
        yield* waitFor(`request ${k + 1}`, () => server.requests.length >= k + 1)
      }
      yield* waitFor("the message", () => seen.some((s) => s.item._tag === "Message"))
      yield* Fiber.interrupt(fiber)
      const causes = disconnects(seen).map((d) => d.cause)
      assert.deepStrictEqual(causes, [
        { _tag: "ServerError", status: 503, retryAfter: 7_000 },
        { _tag: "ServerError", status: 429, retryAfter: 13_000 },
        { _tag: "ServerError", status: 503, retryAfter: 86_400_000 },
        { _tag: "ServerError", status: 429, retryAfter: 0 },
        { _tag: "ServerError", status: 503, retryAfter: undefined },
        { _tag: "ServerError", status: 500, retryAfter: undefined }
      ])
      assert.deepStrictEqual(waits.slice(0, 4), [7_000, 13_000, 40_000, 0])
      // The last two: the retry plus full jitter over the backoff of the 5th and 6th failures.
      assert.deepStrictEqual(disconnects(seen).map((d) => d.failures), [1, 2, 3, 4, 5, 6])
      for (const [i, wait] of waits.slice(4).entries()) {
        assert.isAtLeast(wait, 1_000)
        assert.isBelow(wait, 1_000 + Math.min(30_000, 1_000 * 2 ** (4 + i)))
      }
    }))

  it.scoped("a slow consumer is not a dead connection: only a read waiting for bytes counts", () =>
    Effect.gen(function*() {
      const server = yield* startRawServer((r) => {
        sseHead(r.res)
        r.res.write("retry: 100\ndata: 1\n\ndata: 2\n\n")
      })
      const seen: Array<Seen> = []
      // The consumer spends 60 s (test clock) on the first message, longer than the 45 s idle timeout.
      const fiber = yield* SseClient.streamWithStatus(server.url).pipe(
        Stream.runForEach((item) =>
          Effect.flatMap(Clock.currentTimeMillis, (at) => {
            seen.push({ at, item })
            return item._tag === "Message" && item.data === "1" ? Effect.sleep("60 seconds") : Effect.void
          })
        ),
        Effect.provide(FetchHttpClient.layer),
        Effect.fork
      )
      yield* waitFor("message 1", () => seen.some((s) => s.item._tag === "Message"))
      yield* sleepingUntil(60_000)
      yield* TestClock.adjust("60 seconds")
      yield* waitFor("message 2", () => seen.filter((s) => s.item._tag === "Message").length === 2)
      assert.deepStrictEqual(disconnects(seen), [], "no idle disconnect while the consumer was busy")
      // Now the client reads and nothing comes: idle 45 s after that read began. (The watchdog found
      // no read waiting at 45 s and looks again at 90 s, then waits for the read's deadline.)
      yield* sleepingUntil(90_000)
      yield* TestClock.adjust("30 seconds")
      yield* sleepingUntil(105_000)
      assert.deepStrictEqual(disconnects(seen), [])
      yield* TestClock.adjust("15 seconds")
      yield* waitFor("the idle disconnect", () => disconnects(seen).length === 1)
      assert.deepStrictEqual(disconnects(seen).map((d) => [d.at, d.cause._tag]), [[105_000, "Idle"]])
      yield* Fiber.interrupt(fiber)
    }))
})
