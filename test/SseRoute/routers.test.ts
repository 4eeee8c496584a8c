/**
 * The route mounted in each router style: the classic `HttpRouter` value, an `HttpRouter.Tag`
 * (`HttpRouter.Default`) and an `HttpLayerRouter`. Each serves a working stream, and in each the
 * route layer is built after the server layer, so it drains before the server closes.
 */
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Http from "node:http"
import * as EventBus from "../../src/EventBus.js"
import * as SseRoute from "../../src/SseRoute.js"
import { startServer } from "../utils/server.js"
import { openStream, openStreamScoped, waitFor } from "../utils/sse.js"

const NodeServer = NodeHttpServer.layer(() => Http.createServer(), { port: 0, host: "127.0.0.1" })

/** Opens a stream, publishes one event and checks it arrives with its log id. */
const proveStream = (url: string, bus: EventBus.EventBus["Type"]) =>
  Effect.gen(function*() {
    const stream = yield* openStreamScoped(`${url}/events?topic=r`)
    assert.strictEqual(stream.status, 200)
    assert.strictEqual(stream.headers["content-type"], "text/event-stream")
    yield* waitFor("the opening bytes", () => stream.text.startsWith("retry: "))
    const event = yield* bus.publish({ topic: "r", type: "hello", data: "router" })
    yield* waitFor("the event", () => stream.parsed().events.length === 1)
    assert.deepStrictEqual(stream.parsed().events, [
      { id: `${event.id.epoch}-${event.id.seq}`, event: "hello", data: "router" }
    ])
  })

/** Builds a server layer in its own scope; returns the URL, the bus and a close that times the drain. */
const serve = <E>(layer: Layer.Layer<EventBus.EventBus | HttpServer.HttpServer, E>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void)) // a no-op once the test closed it
    const context = yield* Layer.buildWithScope(layer, scope).pipe(Effect.orDie)
    const server = yield* HttpServer.HttpServer.pipe(Effect.provide(context))
    const port = server.address._tag === "TcpAddress" ? server.address.port : 0
    return {
      url: `http://127.0.0.1:${port}`,
      bus: yield* EventBus.EventBus.pipe(Effect.provide(context)),
      scope
    }
  })

/** With a stream open, closing the scope ends it cleanly (the route drained first) and promptly. */
const proveDrain = (url: string, scope: Scope.CloseableScope) =>
  Effect.gen(function*() {
    const open = yield* Effect.promise(() => openStream(`${url}/events`))
    yield* waitFor("the opening bytes", () => open.text.startsWith("retry: "))
    const started = Date.now()
    yield* Scope.close(scope, Exit.void)
    yield* waitFor("the stream to end", () => open.ended)
    assert.isTrue(open.complete, "the chunked terminator arrived")
    assert.isTrue(open.text.endsWith("event: end\ndata: {\"reason\":\"shutdown\"}\n\n"))
    assert.isBelow(Date.now() - started, 2_000)
  })

describe("SseRoute router styles", () => {
  it.scopedLive("classic HttpRouter (SseRoute.router served with HttpServer.serve)", () =>
    Effect.gen(function*() {
      const { bus, url } = yield* startServer()
      yield* proveStream(url, bus)
    }))

  it.scopedLive("classic HttpRouter mounted under a prefix", () =>
    Effect.gen(function*() {
      const app = HttpRouter.empty.pipe(HttpRouter.mount("/bus", SseRoute.router))
      const { bus, scope, url } = yield* serve(
        HttpServer.serve(app).pipe(
          Layer.provideMerge(SseRoute.layer()),
          Layer.provideMerge(EventBus.layerMemory()),
          Layer.provideMerge(NodeServer)
        )
      )
      yield* proveStream(`${url}/bus`, bus)
      yield* proveDrain(`${url}/bus`, scope)
    }))

  it.scopedLive("HttpRouter.Tag (SseRoute.layerRouter(HttpRouter.Default) with HttpRouter.Default.serve())", () =>
    Effect.gen(function*() {
      const { bus, scope, url } = yield* serve(
        HttpRouter.Default.serve().pipe(
          Layer.provide(SseRoute.layerRouter(HttpRouter.Default)),
          Layer.provideMerge(SseRoute.layer()),
          Layer.provideMerge(EventBus.layerMemory()),
          Layer.provideMerge(NodeServer)
        )
      )
      yield* proveStream(url, bus)
      yield* proveDrain(url, scope)
    }))

  it.scopedLive("HttpLayerRouter (SseRoute.layerHttpLayerRouter with HttpLayerRouter.serve)", () =>
    Effect.gen(function*() {
      const { bus, scope, url } = yield* serve(
        HttpLayerRouter.serve(SseRoute.layerHttpLayerRouter, { disableLogger: true, disableListenLog: true }).pipe(
          Layer.provideMerge(SseRoute.layer()),
          Layer.provideMerge(EventBus.layerMemory()),
          Layer.provideMerge(NodeServer)
        )
      )
      yield* proveStream(url, bus)
      yield* proveDrain(url, scope)
    }))

  it.effect("a route layer with a limit that is not positive fails to build, naming the option", () =>
    Effect.gen(function*() {
      const bad: ReadonlyArray<SseRoute.Options> = [
        { maxEvents: 0 },
        { maxBytes: -5 },
        { maxReplay: Number.NaN },
        { stallTimeout: "0 millis" }
      ]
      for (const options of bad) {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(
          SseRoute.layer(options).pipe(Layer.provide(EventBus.layerMemory()))
        )))
        assert.isTrue(Exit.isFailure(exit), JSON.stringify(options))
        assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), Object.keys(options)[0]!)
      }
    }))
})
