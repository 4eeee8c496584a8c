/**
 * The route as an `HttpApiGroup`, mounted next to an ordinary group in one `HttpApi`, guarded by
 * `HttpApiMiddleware` bearer security: its OpenAPI document, and streams read with `eventsource@5`.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { EventSource } from "eventsource"
import * as Http from "node:http"
import * as EventBus from "../src/EventBus.js"
import * as SseApi from "../src/SseApi.js"
import * as SseRoute from "../src/SseRoute.js"
import * as Topic from "../src/Topic.js"
import { request, waitFor, waitForEffect } from "./utils/sse.js"

class CurrentUser extends Context.Tag("test/CurrentUser")<CurrentUser, string>() {}

/** The middleware's refusal, with the same `{ error, message }` body as the route's own. */
class Unauthorized extends Schema.Class<Unauthorized>("Unauthorized")(
  { error: Schema.Literal("unauthorized"), message: Schema.String },
  HttpApiSchema.annotations({ status: 401 })
) {}

class Authorization extends HttpApiMiddleware.Tag<Authorization>()("test/Authorization", {
  failure: Unauthorized,
  provides: CurrentUser,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

const AuthorizationLive = Layer.succeed(Authorization, {
  bearer: (token) =>
    Redacted.value(token) === "s3cret"
      ? Effect.succeed("alice")
      : Effect.fail(new Unauthorized({ error: "unauthorized", message: "a valid bearer token is required" }))
})

const Orders = Topic.make("orders/*", {
  OrderPlaced: Schema.Struct({ id: Schema.String, total: Schema.Number })
})

const Health = HttpApiGroup.make("health").add(
  HttpApiEndpoint.get("health", "/health").addSuccess(Schema.Struct({ ok: Schema.Boolean }))
)

const Api = HttpApi.make("app")
  .add(Health)
  .add(SseApi.group.middleware(Authorization))
  .add(SseApi.makeGroup({ name: "orders", path: "/orders", topic: Orders }))

const HealthLive = HttpApiBuilder.group(Api, "health", (h) => h.handle("health", () => Effect.succeed({ ok: true })))

/** Serves the API on 127.0.0.1:0; the route layer is released before the server closes. */
const startApi = Effect.gen(function*() {
  const ApiLive = HttpApiBuilder.api(Api).pipe(
    Layer.provide(HealthLive),
    Layer.provide(SseApi.layer(Api, "sluice")),
    Layer.provide(SseApi.layer(Api, "orders", { topic: Orders })),
    Layer.provide(AuthorizationLive)
  )
  const app = Layer.mergeAll(HttpApiBuilder.serve(), HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" })).pipe(
    Layer.provide(ApiLive),
    Layer.provideMerge(SseRoute.layer({ publish: true })),
    Layer.provideMerge(EventBus.layerMemory()),
    Layer.provideMerge(NodeHttpServer.layer(() => Http.createServer(), { port: 0, host: "127.0.0.1" }))
  )
  const context = yield* Layer.build(app).pipe(Effect.orDie)
  const address = yield* HttpServer.addressWith((a) => Effect.succeed(a)).pipe(Effect.provide(context))
  const port = address._tag === "TcpAddress" ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}`,
    bus: Context.get(context, EventBus.EventBus),
    route: Context.get(context, SseRoute.SseRoute)
  }
})

/** An `eventsource@5` client for the scope, sending `headers` on every (re)connect. */
const openEventSource = (url: string, headers: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const received: Array<{ type: string; id: string; data: string }> = []
      const source = new EventSource(url, {
        fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, ...headers } })
      })
      const record = (e: MessageEvent) => received.push({ type: e.type, id: e.lastEventId, data: e.data })
      source.addEventListener("message", record)
      source.addEventListener("OrderPlaced", record)
      return { source, received }
    }),
    ({ source }) => Effect.sync(() => source.close())
  )

describe("SseApi", () => {
  it.scopedLive("the OpenAPI document describes the stream and publish endpoints next to the ordinary ones", () =>
    Effect.gen(function*() {
      const { url } = yield* startApi
      const res = yield* Effect.promise(() => request(`${url}/openapi.json`))
      assert.strictEqual(res.status, 200)
      const spec = JSON.parse(res.body)
      assert.isDefined(spec.paths["/health"].get)
      const stream = spec.paths["/events"].get
      assert.deepStrictEqual(
        stream.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`).sort(),
        ["header:last-event-id", "query:lastEventId", "query:topic"]
      )
      assert.deepStrictEqual(Object.keys(stream.responses["200"].content), ["text/event-stream"])
      for (const status of ["400", "401", "403"]) {
        assert.isDefined(stream.responses[status]?.content["application/json"], status)
      }
      assert.deepStrictEqual(stream.security, [{ bearer: [] }])
      assert.strictEqual(spec.components.securitySchemes.bearer.scheme, "bearer")
      const publish = spec.paths["/events"].post
      assert.deepStrictEqual(Object.keys(publish.responses).sort(), ["201", "400", "401", "403", "405", "413", "415", "503"])
      assert.isDefined(publish.requestBody.content["application/json"])
      assert.include(spec.paths["/orders"].get.responses["200"].description, "`OrderPlaced`")
      assert.isUndefined(spec.paths["/orders"].get.security?.[0]?.bearer)
    }))

  it.scopedLive("a bearer token opens the stream for eventsource@5; without one the middleware answers 401 JSON", () =>
    Effect.gen(function*() {
      const { bus, route, url } = yield* startApi
      const refused = yield* Effect.promise(() => request(`${url}/events?topic=t`))
      assert.strictEqual(refused.status, 401)
      assert.deepStrictEqual(JSON.parse(refused.body), { error: "unauthorized", message: "a valid bearer token is required" })
      const badTopic = yield* Effect.promise(() =>
        request(`${url}/events?topic=a%20b`, { headers: { authorization: "Bearer s3cret" } })
      )
      assert.strictEqual(badTopic.status, 400)
      assert.strictEqual(JSON.parse(badTopic.body).error, "invalid_topic")

      const client = yield* openEventSource(`${url}/events?topic=t`, { authorization: "Bearer s3cret" })
      yield* waitForEffect("the stream to open", route.connections, (n) => n === 1)
      yield* bus.publishAll([{ topic: "t", data: "one" }, { topic: "u", data: "other" }, { topic: "t", data: "two" }])
      yield* waitFor("two events", () => client.received.length === 2)
      assert.deepStrictEqual(client.received.map((e) => e.data), ["one", "two"])
      assert.match(client.received[0]!.id, /^[0-9a-z]+-1$/)

      const published = yield* Effect.promise(() =>
        request(`${url}/events`, {
          method: "POST",
          headers: { authorization: "Bearer s3cret", "content-type": "application/json" },
          body: JSON.stringify({ topic: "t", data: "three" })
        })
      )
      assert.strictEqual(published.status, 201)
      yield* waitFor("the published event", () => client.received.length === 3)
      assert.strictEqual(client.received[2]!.data, "three")
    }))

  it.scopedLive("a group backed by a typed topic streams the family by default, decodable with Topic.decode", () =>
    Effect.gen(function*() {
      const { bus, route, url } = yield* startApi
      const client = yield* openEventSource(`${url}/orders`, {})
      yield* waitForEffect("the stream to open", route.connections, (n) => n === 1)
      yield* bus.publish({ topic: "invoices/1", type: "OrderPlaced", data: "{}" })
      yield* Topic.publish(Orders, { topic: "orders/1", type: "OrderPlaced", data: { id: "1", total: 9 } }).pipe(
        Effect.provideService(EventBus.EventBus, bus)
      )
      yield* waitFor("the order", () => client.received.length === 1)
      const [frame] = client.received
      assert.strictEqual(frame!.type, "OrderPlaced")
      const decoded = Topic.decode(Orders, frame!)
      assert.isTrue(Either.isRight(decoded) && decoded.right.type === "OrderPlaced" && decoded.right.data.total === 9)
    }))

  it.scopedLive("a typed group's publish: a payload that does not match the schema is a 400 JSON and appends nothing", () =>
    Effect.gen(function*() {
      const { bus, url } = yield* startApi
      const post = (body: unknown) =>
        Effect.promise(() =>
          request(`${url}/orders`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
        ).pipe(Effect.map((res) => ({ status: res.status, body: JSON.parse(res.body) as Record<string, string> })))
      const refusals = [
        [{ topic: "orders/7", type: "OrderPlaced", data: { id: "7", total: "42" } }, "invalid_payload", /total/],
        [{ topic: "orders/7", type: "OrderPlaced", data: { id: 7, total: 42 } }, "invalid_payload", /id/],
        [{ topic: "orders/7", type: "OrderPlaced", data: "{\"id\":\"7\",\"total\":42}" }, "invalid_payload", /Expected/],
        [{ topic: "orders/7", type: "OrderShipped", data: { id: "7", total: 42 } }, "invalid_event", /not an event type of orders\/\*/],
        [{ topic: "invoices/7", type: "OrderPlaced", data: { id: "7", total: 42 } }, "invalid_event", /does not match the pattern/]
      ] as const
      for (const [body, error, message] of refusals) {
        const res = yield* post(body)
        assert.strictEqual(res.status, 400, JSON.stringify(body))
        assert.deepStrictEqual(Object.keys(res.body).sort(), ["error", "message"])
        assert.strictEqual(res.body.error, error)
        assert.match(res.body.message, message)
      }
      assert.strictEqual((yield* bus.stats).published, 0, "nothing was appended")

      // A valid payload is stored encoded with its schema (an excess property is not kept).
      const accepted = yield* post({ topic: "orders/7", type: "OrderPlaced", data: { id: "7", total: 42, note: "x" } })
      assert.strictEqual(accepted.status, 201)
      const sub = yield* bus.subscribe({ after: `${(yield* bus.stats).log.epoch}-0` })
      const [taken] = yield* sub.takeAll
      const event = Chunk.unsafeHead(taken)
      assert.strictEqual(accepted.body.id, `${event!.id.epoch}-${event!.id.seq}`)
      assert.deepStrictEqual([event!.topic, event!.type, event!.data], ["orders/7", "OrderPlaced", '{"id":"7","total":42}'])
      // The untyped group still takes any data.
      const untyped = yield* Effect.promise(() =>
        request(`${url}/events`, {
          method: "POST",
          headers: { authorization: "Bearer s3cret", "content-type": "application/json" },
          body: JSON.stringify({ topic: "orders/8", type: "OrderPlaced", data: { total: "not checked" } })
        })
      )
      assert.strictEqual(untyped.status, 201)
    }))

  it.scopedLive("the OpenAPI document shows a typed group's request body: one member per event type with its schema", () =>
    Effect.gen(function*() {
      const { url } = yield* startApi
      const spec = JSON.parse((yield* Effect.promise(() => request(`${url}/openapi.json`))).body)
      const body = spec.paths["/orders"].post.requestBody.content["application/json"].schema
      const resolve = (s: { $ref?: string }) => s.$ref === undefined ? s : spec.components.schemas[s.$ref.split("/").pop()!]
      const members = (body.anyOf ?? [body]).map(resolve)
      assert.strictEqual(members.length, 1)
      const [placed] = members
      assert.deepStrictEqual(placed.required.sort(), ["data", "topic", "type"])
      assert.deepStrictEqual(placed.properties.type, { type: "string", enum: ["OrderPlaced"] })
      const data = resolve(placed.properties.data)
      assert.deepStrictEqual(data.required.sort(), ["id", "total"])
      assert.strictEqual(data.properties.id.type, "string")
      assert.strictEqual(data.properties.total.type, "number")
      const refusals = spec.paths["/orders"].post.responses["400"].content["application/json"].schema.anyOf.map(resolve)
      assert.isTrue(refusals.some((r: { description?: string }) => r.description?.includes("`invalid_payload`")))
      // The untyped group's body stays open.
      const untyped = resolve(spec.paths["/events"].post.requestBody.content["application/json"].schema)
      assert.deepStrictEqual(untyped.required, ["topic", "data"])
    }))
})
