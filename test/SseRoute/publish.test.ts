/**
 * `POST /events` and the authorization hook: every refusal is a deliberate status with a JSON
 * `{ error, message }` body and no stack trace.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as SseRoute from "../../src/SseRoute.js"
import { startServer } from "../utils/server.js"
import { assertRefused, json, post } from "../utils/http.js"
import { openStreamScoped, request, waitFor } from "../utils/sse.js"

describe("SseRoute publish", () => {
  it.scopedLive("201 with the id; 400 bad JSON or fields; 413 over the limit (declared or chunked); 415", () =>
    Effect.gen(function*() {
      const { bus, url } = yield* startServer({ bus: { maxEventBytes: 300 }, route: { publish: true, maxBodyBytes: 400 } })
      const stream = yield* openStreamScoped(`${url}/events?topic=orders/*`)
      const epoch = (yield* bus.stats).log.epoch

      const created = yield* post(url, JSON.stringify({ topic: "orders/1", type: "created", data: "hello" }))
      assert.strictEqual(created.status, 201)
      assert.deepStrictEqual(JSON.parse(created.body), { id: `${epoch}-1` })
      const structured = yield* post(url, JSON.stringify({ topic: "orders/2", data: { n: 1, s: "x" } }), {
        "content-type": "application/json; charset=utf-8"
      })
      assert.strictEqual(structured.status, 201)
      yield* waitFor("both events on the stream", () => stream.parsed().events.length === 2)
      assert.deepStrictEqual(stream.parsed().events, [
        { id: `${epoch}-1`, event: "created", data: "hello" },
        { id: `${epoch}-2`, event: undefined, data: "{\"n\":1,\"s\":\"x\"}" }
      ])

      assertRefused(yield* post(url, "{not json"), 400, "invalid_json")
      assertRefused(yield* post(url, ""), 400, "invalid_json")
      for (
        const body of [
          [],
          "a string",
          null,
          42,
          {},
          { topic: 1, data: "x" },
          { topic: "t" },
          { topic: "t", data: "x", type: 5 },
          { topic: "bad topic", data: "x" },
          { topic: "t", type: "end", data: "x" },
          { topic: "t", type: "a\nb", data: "x" }
        ]
      ) {
        assertRefused(yield* post(url, JSON.stringify(body)), 400, "invalid_event")
      }

      const big = JSON.stringify({ topic: "t", data: "x".repeat(1_000) })
      assertRefused(yield* post(url, big), 413, "payload_too_large")
      // Chunked, no content-length: the route stops reading at the limit.
      const chunked = yield* post(url, [big.slice(0, 300), big.slice(300, 700), big.slice(700)])
      assertRefused(chunked, 413, "payload_too_large")
      assert.strictEqual(chunked.headers.connection, "close")
      // Under the body limit but over the bus's event size.
      assertRefused(yield* post(url, JSON.stringify({ topic: "t", data: "y".repeat(350) })), 413, "payload_too_large")

      assertRefused(yield* post(url, "{}", { "content-type": "text/plain" }), 415, "unsupported_media_type")
      assertRefused(yield* post(url, "{}", { "content-type": "application/jsonp" }), 415, "unsupported_media_type")
      assertRefused(yield* post(url, "{}", {}), 415, "unsupported_media_type")

      const stats = yield* bus.stats
      assert.strictEqual(stats.published, 2, "nothing refused was appended")
      assert.strictEqual(stream.parsed().events.length, 2)
    }))

  it.scopedLive("405 when publishing is not enabled", () =>
    Effect.gen(function*() {
      const { bus, url } = yield* startServer()
      const res = yield* post(url, JSON.stringify({ topic: "t", data: "x" }))
      assertRefused(res, 405, "method_not_allowed")
      assert.strictEqual(res.headers.allow, "GET")
      assert.strictEqual((yield* bus.stats).published, 0)
    }))

  it.scopedLive("the authorization hook answers 401 and 403 for subscribe and for publish", () =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      const authorize: SseRoute.Authorize = (req, topics, action) => {
        calls.push(`${action}:${topics.join(",")}`)
        const auth = req.headers["authorization"]
        if (auth === undefined) return Effect.fail(new SseRoute.Unauthorized({ message: "who are you?" }))
        if (action === "publish" && auth !== "Bearer writer") {
          return Effect.fail(new SseRoute.Forbidden({ message: "read-only token" }))
        }
        if (topics.some((t) => t.startsWith("secret"))) return Effect.fail(new SseRoute.Forbidden({ message: "not yours" }))
        return Effect.succeed({ allows: (topic: string) => !topic.startsWith("secret") })
      }
      const { bus, route, url } = yield* startServer({ route: { publish: true, authorize } })
      const get = (path: string, headers: Record<string, string> = {}) =>
        Effect.promise(() => request(`${url}${path}`, { headers }))
      const event = JSON.stringify({ topic: "news", data: "x" })

      assertRefused(yield* get("/events?topic=news"), 401, "unauthorized")
      assertRefused(yield* get("/events?topic=secret/1", { authorization: "Bearer reader" }), 403, "forbidden")
      assertRefused(yield* get("/events?topic=news&topic=secret/*", { authorization: "Bearer reader" }), 403, "forbidden")
      assertRefused(yield* post(url, event), 401, "unauthorized")
      assertRefused(yield* post(url, event, { ...json, authorization: "Bearer reader" }), 403, "forbidden")
      assertRefused(
        yield* post(url, JSON.stringify({ topic: "secret/1", data: "x" }), { ...json, authorization: "Bearer writer" }),
        403,
        "forbidden"
      )
      let stats = yield* bus.stats
      assert.strictEqual(stats.subscribers, 0, "a refused subscriber never registered")
      assert.strictEqual(stats.published, 0)
      assert.strictEqual(yield* route.connections, 0)

      const stream = yield* openStreamScoped(`${url}/events?topic=news`, { authorization: "Bearer reader" })
      assert.strictEqual(stream.status, 200)
      const ok = yield* post(url, event, { ...json, authorization: "Bearer writer" })
      assert.strictEqual(ok.status, 201)
      yield* waitFor("the authorized event", () => stream.parsed().events.length === 1)
      stats = yield* bus.stats
      assert.strictEqual(stats.published, 1)
      assert.includeMembers(calls, ["subscribe:news", "subscribe:secret/1", "publish:news", "publish:secret/1"])
    }))

  it.scopedLive("an Idempotency-Key makes a retried publish return the first id and append nothing", () =>
    Effect.gen(function*() {
      const { bus, url } = yield* startServer({ route: { publish: true } })
      const event = JSON.stringify({ topic: "orders/1", data: "once" })
      const first = yield* post(url, event, { ...json, "idempotency-key": "order-1-created" })
      const retried = yield* post(url, event, { ...json, "idempotency-key": "order-1-created" })
      assert.strictEqual(first.status, 201)
      assert.strictEqual(retried.status, 201)
      assert.deepStrictEqual(JSON.parse(retried.body), JSON.parse(first.body))
      assert.strictEqual((yield* bus.stats).published, 1)
      const other = yield* post(url, event, { ...json, "idempotency-key": "order-1-updated" })
      assert.notDeepEqual(JSON.parse(other.body), JSON.parse(first.body))
      assertRefused(yield* post(url, event, { ...json, "idempotency-key": "k".repeat(201) }), 400, "invalid_idempotency_key")
      assert.strictEqual((yield* bus.stats).published, 2)
    }))
})
