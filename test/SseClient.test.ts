/**
 * The client against the real sluice route: topics and headers reach the route, cursors it cannot
 * serve arrive as `Reset` values, the authorization hook's refusals and a malformed topic are typed
 * errors, `decode` gives typed values (and fails the stream rather than skip an event), and
 * interrupting the consumer releases the subscription.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as Event from "../src/Event.js"
import * as SseClient from "../src/SseClient.js"
import * as SseRoute from "../src/SseRoute.js"
import { startServer } from "./utils/server.js"
import { waitFor, waitForEffect } from "./utils/sse.js"

const take = <A, E>(stream: Stream.Stream<A, E, any>, n: number) =>
  stream.pipe(Stream.take(n), Stream.runCollect, Effect.map(Chunk.toReadonlyArray), Effect.provide(FetchHttpClient.layer))

/** Publishes `n` events on `topic` once the route has `connections` open streams. */
const publishWhenOpen = (
  server: Effect.Effect.Success<ReturnType<typeof startServer>>,
  connections: number,
  inputs: ReadonlyArray<Event.EventInput>
) =>
  Effect.gen(function*() {
    yield* waitForEffect("the client to connect", server.route.connections, (n) => n >= connections)
    yield* server.bus.publishAll(inputs)
  }).pipe(Effect.fork)

class BadJson extends Data.TaggedError("BadJson")<{ readonly data: string }> {}

describe("SseClient against the route", () => {
  it.scopedLive("streams the requested topics only, with their ids and types", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      yield* publishWhenOpen(server, 1, [
        { topic: "orders/1", type: "created", data: "a" },
        { topic: "users/1", data: "not for us" },
        { topic: "orders/2", data: "b\nc" }
      ])
      const items = yield* take(SseClient.stream(`${server.url}/events`, { topics: ["orders/*"] }), 2)
      const epoch = (yield* server.bus.stats).log.epoch
      assert.deepStrictEqual(items, [
        { _tag: "Message", id: `${epoch}-1`, type: "created", data: "a" },
        { _tag: "Message", id: `${epoch}-3`, type: "message", data: "b\nc" }
      ])
    }))

  it.scopedLive("resumes from lastEventId without the events before it", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const published = yield* server.bus.publishAll(["1", "2", "3"].map((data) => ({ topic: "t", data })))
      const items = yield* take(
        SseClient.stream(`${server.url}/events`, { lastEventId: Event.formatId(published[0]!.id) }),
        2
      )
      assert.deepStrictEqual(items.map((i) => i._tag === "Message" ? i.data : i._tag), ["2", "3"])
    }))

  it.scopedLive("a cursor the route cannot serve arrives as a Reset value, then live events", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      yield* server.bus.publish({ topic: "t", data: "old" })
      const { epoch, head } = (yield* server.bus.stats).log
      for (const [cursor, reason] of [["garbage", "invalid"], ["zz0-1", "epoch-mismatch"], [`${epoch}-99`, "future"]]) {
        const before = yield* server.route.connections
        yield* publishWhenOpen(server, before + 1, [{ topic: "t", data: `after ${cursor}` }])
        const items = yield* take(SseClient.stream(`${server.url}/events`, { lastEventId: cursor }), 2)
        const reset = items[0] as SseClient.Reset
        assert.strictEqual(reset._tag, "Reset")
        assert.strictEqual(reset.reason, reason)
        assert.isString(reset.message)
        assert.strictEqual(Event.parseId(reset.head)._tag, "Right")
        const message = items[1] as SseClient.Message
        assert.strictEqual(message.data, `after ${cursor}`)
        assert.isTrue(Number(message.id.split("-")[1]) > Number(reset.head.split("-")[1]))
        yield* waitForEffect("the stream to be released", server.route.connections, (n) => n === before)
      }
      assert.isAtLeast(head, 1)
    }))

  it.scopedLive("the authorization hook's 401 and 403 and a malformed topic's 400 are typed errors", () =>
    Effect.gen(function*() {
      const authorize: SseRoute.Authorize = (request, topics) => {
        if (request.headers.authorization !== "Bearer ok") {
          return Effect.fail(new SseRoute.Unauthorized({ message: "who are you?" }))
        }
        return topics.includes("secret")
          ? Effect.fail(new SseRoute.Forbidden({ message: "not yours" }))
          : Effect.succeed({ all: true } as const)
      }
      const server = yield* startServer({ route: { authorize } })
      const url = `${server.url}/events`
      const failure = (options: SseClient.Options) =>
        SseClient.stream(url, options).pipe(Stream.runDrain, Effect.flip, Effect.provide(FetchHttpClient.layer))
      const headers = { authorization: "Bearer ok" }
      assert.deepInclude(yield* failure({}), { reason: "Unauthorized", status: 401 })
      assert.deepInclude(yield* failure({ headers, topics: ["secret"] }), { reason: "Forbidden", status: 403 })
      assert.deepInclude(yield* failure({ headers, topics: ["bad topic"] }), { reason: "Status", status: 400 })
      const authorized = yield* take(SseClient.streamWithStatus(url, { headers: Effect.succeed(headers) }), 1)
      assert.deepStrictEqual(authorized, [{ _tag: "Connected", lastEventId: "" }])
      assert.deepInclude(yield* SseClient.stream(`${server.url}/nowhere`).pipe(
        Stream.runDrain,
        Effect.flip,
        Effect.provide(FetchHttpClient.layer)
      ), { reason: "NotFound", status: 404 })
    }))

  it.scopedLive("decode gives typed values; an event it cannot decode fails the stream", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      yield* publishWhenOpen(server, 1, [
        { topic: "t", data: "{\"n\":1}" },
        { topic: "t", data: "{\"n\":2}" },
        { topic: "t", data: "not json" },
        { topic: "t", data: "{\"n\":4}" }
      ])
      const decode = (message: SseClient.Message) =>
        Effect.try({
          try: () => JSON.parse(message.data) as { readonly n: number },
          catch: () => new BadJson({ data: message.data })
        })
      const seen: Array<number> = []
      const error = yield* SseClient.stream(`${server.url}/events`, { decode }).pipe(
        Stream.runForEach((item) => Effect.sync(() => item._tag === "Message" && seen.push(item.data.n))),
        Effect.flip,
        Effect.provide(FetchHttpClient.layer)
      )
      assert.deepStrictEqual(seen, [1, 2])
      assert.deepStrictEqual(error, new BadJson({ data: "not json" }))
      yield* waitForEffect("the stream to be released", server.route.connections, (n) => n === 0)
    }))

  it.scopedLive("interrupting the consumer releases the subscription and the socket", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const got: Array<string> = []
      const fiber = yield* SseClient.stream(`${server.url}/events`).pipe(
        Stream.runForEach((item) => Effect.sync(() => got.push(item._tag))),
        Effect.provide(FetchHttpClient.layer),
        Effect.fork
      )
      yield* waitForEffect("the client to connect", server.route.connections, (n) => n === 1)
      yield* server.bus.publish({ topic: "t", data: "x" })
      yield* waitFor("the message", () => got.length === 1)
      yield* Fiber.interrupt(fiber)
      yield* waitForEffect("subscribers to return to 0", server.bus.stats, (s) => s.subscribers === 0)
      assert.strictEqual(yield* server.route.connections, 0)
    }))
})
