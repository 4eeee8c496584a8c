/**
 * Authorization decides what a subscriber may receive. The natural hook — "nothing under `secret`"
 * — used to see only the requested patterns, and `/events`, `topic=*`, `topic=s*` and
 * `topic=news&topic=se*` each received the secret events. Now the hook answers what the principal
 * may read and the bus applies it to every event, live and replayed.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as SseRoute from "../../src/SseRoute.js"
import { assertRefused, json, post } from "../utils/http.js"
import { startServer } from "../utils/server.js"
import { openStreamScoped, request, waitFor } from "../utils/sse.js"

const notSecret: SseRoute.Authorize = () => Effect.succeed({ allows: (topic: string) => !topic.startsWith("secret") })

const BYPASSES = ["/events", "/events?topic=*", "/events?topic=s*", "/events?topic=news&topic=se*"]

describe("SseRoute authorization", () => {
  it.scopedLive("wildcards and topic-less requests never receive what the principal may not read", () =>
    Effect.gen(function*() {
      const { bus, url } = yield* startServer({ route: { authorize: notSecret } })
      const first = yield* bus.publishAll([{ topic: "secret/1", data: "old secret" }, { topic: "news", data: "old news" }])
      const streams = yield* Effect.forEach(BYPASSES, (path) => openStreamScoped(`${url}${path}`))
      const resumed = yield* Effect.forEach(
        BYPASSES,
        (path) => openStreamScoped(`${url}${path}`, { "last-event-id": `${first[0]!.id.epoch}-0` })
      )
      yield* bus.publishAll([
        { topic: "secret/2", data: "new secret" },
        { topic: "s3", data: "s3 is fine" },
        { topic: "news", data: "new news" }
      ])
      for (const s of [...streams, ...resumed]) assert.strictEqual(s.status, 200)
      // the last event each may read: `s*` matches no news
      const last = (i: number) => (BYPASSES[i] === "/events?topic=s*" ? "s3 is fine" : "new news")
      yield* waitFor("every stream to get its last event", () =>
        streams.every((s, i) => s.text.includes(last(i))) && resumed.every((s, i) => s.text.includes(last(i))))
      for (const [i, s] of streams.entries()) {
        assert.notInclude(s.text, "secret", BYPASSES[i]!)
      }
      for (const [i, s] of resumed.entries()) {
        assert.notInclude(s.text, "secret", `${BYPASSES[i]} resumed`)
        if (last(i) === "new news") assert.include(s.text, "old news", "the replay is filtered, not dropped")
      }
    }))

  it.scopedLive("a concrete forbidden topic, or a request that can match nothing allowed, gets 403", () =>
    Effect.gen(function*() {
      const onlyNews: SseRoute.Authorize = () => Effect.succeed({ topics: ["news/*"] })
      const { bus, url } = yield* startServer({ route: { authorize: onlyNews, publish: true } })
      const get = (path: string) => Effect.promise(() => request(`${url}${path}`))
      assertRefused(yield* get("/events?topic=secret/1"), 403, "forbidden")
      assertRefused(yield* get("/events?topic=news/1&topic=secret/1"), 403, "forbidden")
      assertRefused(yield* get("/events?topic=other/*"), 403, "forbidden")
      assertRefused(yield* post(url, JSON.stringify({ topic: "secret/1", data: "x" }), json), 403, "forbidden")
      assert.strictEqual((yield* bus.stats).published, 0)

      const wide = yield* openStreamScoped(`${url}/events?topic=n*`)
      assert.strictEqual(wide.status, 200)
      yield* bus.publishAll([{ topic: "nope", data: "not news" }, { topic: "news/1", data: "news one" }])
      yield* waitFor("the allowed event", () => wide.text.includes("news one"))
      assert.notInclude(wide.text, "not news")
      assert.strictEqual((yield* bus.stats).subscribers, 1)
    }))

  it.scopedLive("a hook that grants a malformed pattern answers 500 without a stack, and registers nothing", () =>
    Effect.gen(function*() {
      const broken: SseRoute.Authorize = () => Effect.succeed({ topics: ["bad topic"] })
      const { bus, url } = yield* startServer({ route: { authorize: broken } })
      assertRefused(yield* Effect.promise(() => request(`${url}/events`)), 500, "internal")
      assert.strictEqual((yield* bus.stats).subscribers, 0)
    }))

  it.scopedLive("an access of no topics grants nothing: no stream, no publish", () =>
    Effect.gen(function*() {
      const nothing: SseRoute.Authorize = () => Effect.succeed({ topics: [] })
      const { bus, url } = yield* startServer({ route: { authorize: nothing, publish: true } })
      assertRefused(yield* Effect.promise(() => request(`${url}/events`)), 403, "forbidden")
      assertRefused(yield* Effect.promise(() => request(`${url}/events?topic=admin/secret`)), 403, "forbidden")
      assertRefused(yield* post(url, JSON.stringify({ topic: "admin/secret", data: "x" }), json), 403, "forbidden")
      const stats = yield* bus.stats
      assert.strictEqual(stats.published, 0)
      assert.strictEqual(stats.subscribers, 0)
    }))
})
