/**
 * A node started while Redis is down: the log, the bus and the route start anyway. Publishes fail
 * with a typed `Unavailable` (HTTP 503 JSON), subscriptions end as `unavailable` (HTTP 200, `retry:`
 * and a clean `event: end`); when Redis comes up (a private `redis-server`, started after the bus)
 * the bus follows its log and works, with no restart.
 */
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { assert, beforeEach, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { EventSource } from "eventsource"
import * as Http from "node:http"
import * as EventBus from "../../src/EventBus.js"
import * as RedisLog from "../../src/EventLog/Redis.js"
import * as SseRoute from "../../src/SseRoute.js"
import { privateRedis, requireRedis } from "../utils/redis.js"
import { request, waitFor } from "../utils/sse.js"

beforeEach(requireRedis)

/** The route over a bus over the Redis log at `url`, on 127.0.0.1:0, for the scope. */
const startNode = (url: string) =>
  Effect.gen(function*() {
    const app = Layer.mergeAll(HttpServer.serve(SseRoute.router), Layer.effectDiscard(Effect.void)).pipe(
      Layer.provideMerge(SseRoute.layer({ publish: true, heartbeat: "200 millis" })),
      Layer.provideMerge(EventBus.layer()),
      Layer.provideMerge(RedisLog.layer({ url, prefix: "start", connectTimeout: "1 second", blockTimeout: "100 millis" })),
      Layer.provideMerge(NodeHttpServer.layer(() => Http.createServer(), { port: 0, host: "127.0.0.1" }))
    )
    const context = yield* Layer.build(app)
    const address = yield* HttpServer.addressWith((a) => Effect.succeed(a)).pipe(Effect.provide(context))
    const bus = yield* EventBus.EventBus.pipe(Effect.provide(context))
    return { bus, base: `http://127.0.0.1:${address._tag === "TcpAddress" ? address.port : 0}` }
  })

const post = (base: string, body: unknown) =>
  Effect.promise(() =>
    request(`${base}/events`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
  )

describe("a node started while Redis is down", () => {
  it.live("starts, refuses with typed errors, and follows its log once Redis is up, with no restart", () =>
    Effect.gen(function*() {
      const redis = yield* privateRedis
      yield* redis.stop
      const { base, bus } = yield* startNode(redis.url)

      // Down: typed refusals, and the documented HTTP answers.
      assert.strictEqual((yield* Effect.flip(bus.publish({ topic: "t", data: "x" }))).reason, "Unavailable")
      assert.strictEqual((yield* Effect.flip(Effect.scoped(bus.subscribe()))).reason, "Unavailable")
      const published = yield* post(base, { topic: "t", data: "x" })
      assert.strictEqual(published.status, 503)
      assert.deepStrictEqual(Object.keys(JSON.parse(published.body)).sort(), ["error", "message"])
      for (const headers of [{ "last-event-id": "0123456789-5" }, {}]) {
        const stream = yield* Effect.promise(() => request(`${base}/events`, { headers }))
        assert.strictEqual(stream.status, 200)
        assert.isTrue(stream.complete, "a clean end")
        assert.match(stream.body, /^retry: \d+\n/)
        assert.include(stream.body, `event: end\ndata: {"reason":"unavailable"}`)
      }

      // Up: the bus follows by itself (the client's and the bus's backoffs are capped at 5 s).
      yield* redis.start
      let first: string | undefined
      for (let i = 0; i < 600 && first === undefined; i++) {
        const res = yield* post(base, { topic: "t", data: "first" })
        if (res.status === 201) first = JSON.parse(res.body).id as string
        else {
          assert.strictEqual(res.status, 503, res.body) // never a 5xx other than the typed 503
          yield* Effect.sleep("50 millis")
        }
      }
      assert.isDefined(first, "a publish succeeded within 30 s of Redis coming up")

      // It works: a resume from the first event replays nothing missing and streams the next ones.
      const received: Array<string> = []
      const source = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const es = new EventSource(`${base}/events?topic=t&lastEventId=${first}`)
          es.addEventListener("message", (e: MessageEvent) => received.push(String(e.data)))
          return es
        }),
        (es) => Effect.sync(() => es.close())
      )
      yield* waitFor("the stream to open", () => source.readyState === EventSource.OPEN, 10_000)
      yield* bus.publishAll([{ topic: "t", data: "second" }, { topic: "t", data: "third" }])
      yield* waitFor("the events after the first", () => received.length === 2, 10_000)
      assert.deepStrictEqual(received, ["second", "third"])
      const stats = yield* bus.stats
      assert.strictEqual(stats.log.head, 3)
      assert.strictEqual(stats.log.position, 3)
    }).pipe(Effect.scoped), 60_000)
})
