/**
 * What a client and a proxy see: response headers, the first bytes before any event, heartbeats,
 * and the JSON stats and Prometheus metrics routes.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { startServer } from "../utils/server.js"
import { openStreamScoped, request, sleepReal, waitFor, waitForEffect } from "../utils/sse.js"

const OPENING = /^retry: (\d+)\n: sluice\n\n/

describe("SseRoute headers and first bytes", () => {
  it.scopedLive("SSE headers, no compression, and retry + comment flushed before any event", () =>
    Effect.gen(function*() {
      const { bus, url } = yield* startServer({ route: { retryMin: "500 millis", retryMax: "700 millis" } })
      const retries: Array<number> = []
      for (let i = 0; i < 10; i++) {
        const stream = yield* openStreamScoped(`${url}/events?topic=t`, { "accept-encoding": "gzip, deflate, br" })
        assert.strictEqual(stream.status, 200)
        assert.strictEqual(stream.headers["content-type"], "text/event-stream")
        assert.strictEqual(stream.headers["cache-control"], "no-cache, no-transform")
        assert.strictEqual(stream.headers["x-accel-buffering"], "no")
        assert.isUndefined(stream.headers["content-encoding"])
        assert.isUndefined(stream.headers["content-length"])
        // Close-delimited by default: no chunk framing, and the socket closes with the stream.
        assert.isUndefined(stream.headers["transfer-encoding"])
        assert.strictEqual(stream.headers["connection"], "close")
        yield* waitFor("the opening bytes", () => OPENING.test(stream.text), 2_000)
        retries.push(Number(OPENING.exec(stream.text)![1]))
        assert.deepStrictEqual(stream.parsed().events, [], "no event was published")
        stream.close()
      }
      assert.strictEqual((yield* bus.stats).published, 0)
      for (const retry of retries) {
        assert.isAtLeast(retry, 500, "at least retryMin")
        assert.isAtMost(retry, 700)
      }
      console.log(`[headers] retry values with retryMin 500 ms, retryMax 700 ms: ${retries.join(", ")}`)
    }))

  it.scopedLive("chunked: true sends the stream with chunked transfer encoding", () =>
    Effect.gen(function*() {
      const { bus, url } = yield* startServer({ route: { chunked: true } })
      const stream = yield* openStreamScoped(`${url}/events?topic=t`)
      assert.strictEqual(stream.headers["transfer-encoding"], "chunked")
      yield* waitFor("the opening bytes", () => OPENING.test(stream.text), 2_000)
      yield* bus.publish({ topic: "t", data: "x" })
      yield* waitFor("the event", () => stream.parsed().events.length === 1, 2_000)
      assert.strictEqual(stream.parsed().events[0]!.data, "x")
    }))

  it.scopedLive("the default retry is jittered between 1 and 5 s", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      for (let i = 0; i < 5; i++) {
        const stream = yield* openStreamScoped(`${url}/events`)
        yield* waitFor("the opening bytes", () => OPENING.test(stream.text), 2_000)
        const retry = Number(OPENING.exec(stream.text)![1])
        assert.isAtLeast(retry, 1_000)
        assert.isAtMost(retry, 5_000)
        stream.close()
      }
    }))

  it.scopedLive("heartbeat comments keep an idle stream alive", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ route: { heartbeat: "50 millis" } })
      const stream = yield* openStreamScoped(`${url}/events`)
      yield* waitFor("three heartbeats", () => stream.parsed().comments.filter((c) => c === "").length >= 3, 3_000)
      const parsed = stream.parsed()
      assert.deepStrictEqual(parsed.events, [])
      assert.strictEqual(parsed.comments[0], "sluice")
      assert.include(stream.text, "\n\n:\n\n")
    }))

  it.scopedLive("GET /stats is JSON and GET /metrics is Prometheus text with sluice_ metrics", () =>
    Effect.gen(function*() {
      const { bus, route, url } = yield* startServer({ route: { maxEvents: 2 } })
      const stream = yield* openStreamScoped(`${url}/events?topic=t`)
      yield* waitForEffect("the stream to open", route.connections, (n) => n === 1)
      yield* bus.publishAll([{ topic: "t", data: "1" }, { topic: "u", data: "2" }])
      yield* waitFor("the event", () => stream.parsed().events.length === 1)
      // Three at once overflow the 2-event buffer: one `overflow` end.
      yield* bus.publishAll([{ topic: "t", data: "3" }, { topic: "t", data: "4" }, { topic: "t", data: "5" }])
      yield* waitFor("the stream to end", () => stream.ended)
      yield* sleepReal(20)

      const statsRes = yield* Effect.promise(() => request(`${url}/stats`))
      assert.strictEqual(statsRes.status, 200)
      assert.match(String(statsRes.headers["content-type"]), /^application\/json/)
      const stats = JSON.parse(statsRes.body)
      assert.strictEqual(stats.published, 5)
      assert.strictEqual(stats.subscribers, 0)
      assert.strictEqual(stats.ends.overflow, 1)
      assert.strictEqual(stats.resumes.live, 1)
      assert.strictEqual(stats.log.head, 5)
      assert.isString(stats.log.epoch)
      assert.deepStrictEqual(stats.sse, { connections: 0, draining: false })
      for (const key of ["bufferedEvents", "bufferedBytes", "delivered"]) assert.isNumber(stats[key], key)

      const metricsRes = yield* Effect.promise(() => request(`${url}/metrics`))
      assert.strictEqual(metricsRes.status, 200)
      assert.match(String(metricsRes.headers["content-type"]), /^text\/plain; version=0\.0\.4/)
      const text = metricsRes.body
      for (
        const line of [
          "# TYPE sluice_published_total counter",
          "# TYPE sluice_subscribers gauge",
          "sluice_subscribers{bus=\"default\"} 0",
          "# TYPE sluice_buffered_events gauge",
          "# TYPE sluice_buffered_bytes gauge",
          "# TYPE sluice_delivered_total counter"
        ]
      ) {
        assert.include(text.split("\n"), line)
      }
      // Series are per bus name: the other tests of this file ran buses named `default` too.
      const value = (series: string): number => {
        const line = text.split("\n").find((l) => l.startsWith(`${series} `))
        assert.isDefined(line, series)
        return Number(line!.slice(series.length + 1))
      }
      assert.isAtLeast(value("sluice_published_total{bus=\"default\"}"), 5)
      assert.isAtLeast(value("sluice_subscriber_ends_total{bus=\"default\",reason=\"overflow\"}"), 1)
      assert.isAtLeast(value("sluice_resumes_total{bus=\"default\",outcome=\"live\"}"), 1)
    }))
})
