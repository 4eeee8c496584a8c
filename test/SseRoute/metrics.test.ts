/**
 * `GET /metrics`: Effect's metrics through the OpenTelemetry Prometheus exporter, checked with a
 * strict reading of the text format (test/utils/promText.ts). Each test file runs in its own
 * process, so the first scrape here sees this file's metrics only.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import { parsePromText } from "../utils/promText.js"
import { startServer } from "../utils/server.js"
import { openStream, request, waitFor } from "../utils/sse.js"

const scrape = (url: string) =>
  Effect.promise(() => request(`${url}/metrics`)).pipe(Effect.map((res) => {
    assert.strictEqual(res.status, 200)
    assert.match(String(res.headers["content-type"]), /^text\/plain; version=0\.0\.4/)
    return { text: res.body, ...parsePromText(res.body) }
  }))

describe("SseRoute GET /metrics", () => {
  it.scopedLive("every end reason and resume outcome has a zero series before anything happened", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const { problems, series, types } = yield* scrape(url)
      assert.deepStrictEqual(problems, [])
      for (const reason of ["overflow", "stalled", "shutdown", "lifetime", "closed"]) {
        assert.strictEqual(series.get(`sluice_subscriber_ends_total{bus="default",reason="${reason}"}`), 0, reason)
      }
      for (const outcome of ["live", "resumed", "epoch-mismatch", "expired", "too-far-behind", "future", "invalid"]) {
        assert.strictEqual(series.get(`sluice_resumes_total{bus="default",outcome="${outcome}"}`), 0, outcome)
      }
      assert.strictEqual(series.get(`sluice_published_total{bus="default"}`), 0)
      for (const name of ["sluice_published_total", "sluice_delivered_total", "sluice_subscriber_ends_total", "sluice_resumes_total"]) {
        assert.strictEqual(types.get(name), "counter", name)
      }
      const gauges = ["sluice_subscribers", "sluice_sse_connections", "sluice_buffered_events", "sluice_buffered_bytes"]
      for (const name of [...gauges, "sluice_log_head", "sluice_log_earliest", "sluice_log_lag_events"]) {
        assert.strictEqual(types.get(name), "gauge", name)
      }
    }))

  it.scopedLive("label names outside the Prometheus charset, colliding names and histograms still scrape", () =>
    Effect.gen(function*() {
      const { bus, url } = yield* startServer()
      yield* bus.publish({ topic: "t", data: "x" })
      const requests = (description: string) =>
        Metric.counter("app.requests", { description, incremental: true }).pipe(
          Metric.tagged("route:name", "GET /a"),
          Metric.tagged("1st", "a\"b\\c\nd")
        )
      yield* Metric.update(requests("requests"), 1)
      // the same name and tags under another description: another Effect metric key, one series
      yield* Metric.update(requests("other"), 1)
      yield* Metric.set(Metric.gauge("app_requests"), 3) // renders under the same name, another type
      const latency = Metric.histogram("app.latency", MetricBoundaries.fromIterable([1, 5, 10]), "latency")
      for (const v of [0.5, 2, 7, 50]) yield* Metric.update(latency, v)

      const { problems, series, text, types } = yield* scrape(url)
      assert.deepStrictEqual(problems, [], text)
      assert.strictEqual(types.get("app_requests_total"), "counter")
      assert.strictEqual(series.get(`app_requests_total{_1st="a\\"b\\\\c\\nd",route_name="GET /a"}`), 1)
      assert.strictEqual(text.split("\n").filter((l) => l.startsWith("app_latency_bucket{le=\"+Inf\"}")).length, 1)
      assert.strictEqual(series.get(`app_latency_bucket{}le="+Inf"`), 4)
      assert.strictEqual(series.get(`app_latency_bucket{}le="5"`), 2)
      assert.isAtLeast(series.get(`sluice_published_total{bus="default"}`)!, 1)
    }))

  it.scopedLive("gauges are per bus: two buses in one process report separately, on either route's scrape", () =>
    Effect.gen(function*() {
      const a = yield* startServer({ bus: { name: "orders", log: { maxEvents: 3 } } })
      const b = yield* startServer({ bus: { name: "audit" } })
      const twin = yield* startServer({ bus: { name: "audit" } }) // a second open `audit`
      assert.strictEqual((yield* twin.bus.stats).name, "audit-2")
      const streams = yield* Effect.promise(() =>
        Promise.all([openStream(`${a.url}/events`), openStream(`${a.url}/events`), openStream(`${b.url}/events`)])
      )
      yield* Effect.addFinalizer(() => Effect.sync(() => streams.forEach((s) => s.close())))
      yield* a.bus.publishAll(Array.from({ length: 5 }, (_, i) => ({ topic: "t", data: `${i}` })))
      yield* b.bus.publishAll([{ topic: "t", data: "x" }, { topic: "t", data: "y" }])
      yield* b.bus.subscribe() // a subscriber that is no SSE connection
      yield* waitFor("every stream's events", () =>
        streams[0]!.parsed().events.length === 5 && streams[1]!.parsed().events.length === 5 &&
        streams[2]!.parsed().events.length === 2, 20_000)

      // Scraped on b's route: a's gauges are as current as b's.
      const { problems, series, text } = yield* scrape(b.url)
      assert.deepStrictEqual(problems, [], text)
      const at = (name: string, bus: string) => series.get(`${name}{bus="${bus}"}`)
      assert.deepStrictEqual(
        ["orders", "audit", "audit-2"].map((bus) => [
          at("sluice_sse_connections", bus),
          at("sluice_subscribers", bus),
          at("sluice_published_total", bus),
          at("sluice_log_head", bus),
          at("sluice_log_earliest", bus),
          at("sluice_log_lag_events", bus)
        ]),
        [
          [2, 2, 5, 5, 3, 0], // the memory log of 3 events retains 3..5
          [1, 2, 2, 2, 1, 0],
          [0, 0, 0, 0, 1, 0] // empty: earliest is head + 1
        ]
      )
    }))

  it("the strict reading rejects what the hand-written renderer used to emit", () => {
    const old = [
      "# HELP http_requests requests",
      "# TYPE http_requests counter",
      "http_requests{route:name=\"GET /a\"} 1",
      "# HELP latency latency",
      "# TYPE latency histogram",
      "latency_bucket{le=\"1\"} 1",
      "latency_bucket{le=\"+Inf\"} 2",
      "latency_bucket{le=\"+Inf\"} 2",
      "latency_sum 3",
      "latency_count 2"
    ].join("\n")
    const { problems } = parsePromText(old)
    assert.deepStrictEqual(problems, [
      "counter without _total: http_requests",
      "bad sample line: http_requests{route:name=\"GET /a\"} 1",
      "duplicate series: latency_bucket{le=\"+Inf\"} 2",
      "latency{}: 2 +Inf buckets"
    ])
  })
})
