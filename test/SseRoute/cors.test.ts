/**
 * CORS over real HTTP: same-origin by default (another origin gets a JSON 403 with no CORS headers
 * and no stream is opened, no event published), allowed origins with and without credentials, the
 * preflight that lets fetch-based clients send `Last-Event-ID` and `Authorization`, and a resume
 * from an allowed origin.
 */
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as EventBus from "../../src/EventBus.js"
import * as SseRoute from "../../src/SseRoute.js"
import { startServer } from "../utils/server.js"
import { openStreamScoped, request, waitFor } from "../utils/sse.js"

const APP = "http://app.test:3000"
const EVIL = "http://evil.test"

const preflightOf = (url: string, origin: string) =>
  Effect.promise(() =>
    request(`${url}/events`, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "GET",
        "access-control-request-headers": "last-event-id, authorization"
      }
    })
  )

const postFrom = (url: string, origin: string, data: string) =>
  Effect.promise(() =>
    request(`${url}/events`, {
      method: "POST",
      headers: { origin, "content-type": "application/json" },
      body: JSON.stringify({ topic: "t", data })
    })
  )

const corsHeaders = (headers: Record<string, unknown>) =>
  Object.keys(headers).filter((name) => name.startsWith("access-control-"))

describe("SseRoute CORS", () => {
  it.scopedLive("default: same-origin only; another origin is refused before anything is opened", () =>
    Effect.gen(function*() {
      const { bus, port, route, url } = yield* startServer({ route: { publish: true } })
      const plain = yield* openStreamScoped(`${url}/events?topic=t`)
      assert.strictEqual(plain.status, 200, "no Origin (curl, a server)")
      const same = yield* openStreamScoped(`${url}/events?topic=t`, { origin: `http://127.0.0.1:${port}` })
      assert.strictEqual(same.status, 200, "Origin with the request's host")
      assert.deepStrictEqual(corsHeaders(same.headers), [])
      const fetchSite = yield* openStreamScoped(`${url}/events?topic=t`, {
        origin: "https://public.example",
        "sec-fetch-site": "same-origin"
      })
      assert.strictEqual(fetchSite.status, 200, "Sec-Fetch-Site: same-origin (a proxy rewrote Host)")
      yield* waitFor("three streams", () => route.connections.pipe(Effect.runSync) === 3)

      const refused = yield* Effect.promise(() => request(`${url}/events?topic=t`, { headers: { origin: EVIL } }))
      assert.strictEqual(refused.status, 403)
      assert.strictEqual(JSON.parse(refused.body).error, "origin_not_allowed")
      assert.deepStrictEqual(corsHeaders(refused.headers), [])
      const published = (yield* bus.stats).published
      const post = yield* postFrom(url, EVIL, "forged")
      assert.strictEqual(post.status, 403)
      assert.strictEqual((yield* bus.stats).published, published, "nothing published")
      const preflight = yield* preflightOf(url, EVIL)
      assert.strictEqual(preflight.status, 403)
      assert.deepStrictEqual(corsHeaders(preflight.headers), [])
      assert.strictEqual(yield* route.connections, 3, "no stream opened for the refused origin")
      assert.strictEqual((yield* bus.stats).subscribers, 3)
    }))

  it.scopedLive("an allowed origin with credentials: its headers, the preflight, and a resume", () =>
    Effect.gen(function*() {
      const { bus, url } = yield* startServer({ route: { publish: true, cors: { origins: [APP], credentials: true } } })
      const preflight = yield* preflightOf(url, APP)
      assert.strictEqual(preflight.status, 204)
      assert.strictEqual(preflight.headers["access-control-allow-origin"], APP)
      assert.strictEqual(preflight.headers["access-control-allow-credentials"], "true")
      assert.match(String(preflight.headers["access-control-allow-headers"]), /Last-Event-ID/)
      assert.match(String(preflight.headers["access-control-allow-headers"]), /Authorization/)
      assert.match(String(preflight.headers["access-control-allow-methods"]), /GET/)
      assert.strictEqual(preflight.headers["access-control-max-age"], "600")
      assert.strictEqual((yield* preflightOf(url, EVIL)).status, 403)

      const first = yield* bus.publish({ topic: "t", data: "one" })
      yield* bus.publish({ topic: "t", data: "two" })
      const stream = yield* openStreamScoped(`${url}/events?topic=t`, {
        origin: APP,
        "last-event-id": `${first.id.epoch}-${first.id.seq}`
      })
      assert.strictEqual(stream.status, 200)
      assert.strictEqual(stream.headers["access-control-allow-origin"], APP)
      assert.strictEqual(stream.headers["access-control-allow-credentials"], "true")
      assert.strictEqual(stream.headers["vary"], "Origin")
      yield* waitFor("the replayed event", () => stream.parsed().events.length === 1)
      assert.strictEqual(stream.parsed().events[0]!.data, "two")

      const post = yield* postFrom(url, APP, "three")
      assert.strictEqual(post.status, 201)
      assert.strictEqual(post.headers["access-control-allow-origin"], APP)
      const other = yield* Effect.promise(() => request(`${url}/events?topic=t`, { headers: { origin: EVIL } }))
      assert.strictEqual(other.status, 403)
    }))

  it.scopedLive("origins \"*\": any origin, without credentials", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ route: { cors: { origins: "*" } } })
      const stream = yield* openStreamScoped(`${url}/events?topic=t`, { origin: EVIL })
      assert.strictEqual(stream.status, 200)
      assert.strictEqual(stream.headers["access-control-allow-origin"], "*")
      assert.isUndefined(stream.headers["access-control-allow-credentials"])
      const byPredicate = yield* startServer({ route: { cors: { origins: (o) => o.endsWith(".test:3000") } } })
      assert.strictEqual((yield* preflightOf(byPredicate.url, APP)).status, 204)
      assert.strictEqual((yield* preflightOf(byPredicate.url, EVIL)).status, 403)
    }))

  it.effect("credentials with origins \"*\" fails to build, naming the option", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.scoped(Layer.build(
        SseRoute.layer({ cors: { origins: "*", credentials: true } }).pipe(Layer.provide(EventBus.layerMemory()))
      )))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "cors.credentials")
    }))

  it.effect("SLUICE_SSE_CORS_ORIGINS and SLUICE_SSE_CORS_CREDENTIALS set cors from the environment", () =>
    Effect.gen(function*() {
      const optionsWith = (env: ReadonlyArray<[string, string]>) =>
        Effect.scoped(Effect.gen(function*() {
          const context = yield* Layer.build(
            SseRoute.layerConfig(SseRoute.fromEnv({ cors: { origins: ["http://code.test"], maxAge: "1 minute" } })).pipe(
              Layer.provide(EventBus.layerMemory())
            )
          )
          return (yield* Effect.provide(SseRoute.SseRoute, context)).options.cors!
        })).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(env))))
      const fromEnv = yield* optionsWith([
        ["SLUICE_SSE_CORS_ORIGINS", "http://a.test,http://b.test:8080"],
        ["SLUICE_SSE_CORS_CREDENTIALS", "true"]
      ])
      assert.isTrue(fromEnv.allows!("http://b.test:8080"))
      assert.isFalse(fromEnv.allows!("http://code.test"), "the environment's list replaces the code's")
      assert.isTrue(fromEnv.credentials)
      assert.strictEqual(fromEnv.maxAgeSeconds, 60, "the rest of the code's cors stays")
      const inCode = yield* optionsWith([])
      assert.isTrue(inCode.allows!("http://code.test"))
      assert.isFalse(inCode.credentials)
      const any = yield* optionsWith([["SLUICE_SSE_CORS_ORIGINS", "*"]])
      assert.isUndefined(any.allows)
    }))
})
