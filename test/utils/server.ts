import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import * as Event from "../../src/Event.js"
import * as EventBus from "../../src/EventBus.js"
import * as EventLog from "../../src/EventLog.js"
import * as SseRoute from "../../src/SseRoute.js"

/** A running server on a random loopback port, with the bus and route it serves. */
export interface TestServer {
  readonly url: string
  readonly port: number
  readonly bus: EventBus.EventBus["Type"]
  readonly route: SseRoute.SseRoute["Type"]
  readonly server: Http.Server
}

/**
 * Serves `SseRoute.router` on 127.0.0.1:0 for the current scope. The route layer is built after the
 * server, so closing the scope drains the streams before the server closes.
 */
export const startServer = (options?: {
  readonly bus?: EventBus.Options & { readonly log?: EventLog.MemoryOptions | undefined }
  readonly route?: SseRoute.Options
  /** Wraps the memory log the bus runs on (e.g. to give `read` the latency of a remote backend). */
  readonly wrapLog?: (log: EventLog.EventLog["Type"]) => EventLog.EventLog["Type"]
  /** `false` turns the platform's request spans off (`HttpMiddleware.withTracerDisabledWhen`). */
  readonly tracer?: boolean
  /** Options of the `node:http` server (e.g. `maxHeaderSize`). */
  readonly http?: Http.ServerOptions
  /** Routes added next to the route's (e.g. a test page on the same origin). */
  readonly extend?: (router: typeof SseRoute.router) => typeof SseRoute.router
  /** An app middleware around the router (it sees each request's fiber from start to end). */
  readonly middleware?: HttpMiddleware.HttpMiddleware
}): Effect.Effect<TestServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    let server: Http.Server | undefined
    const serverLayer = NodeHttpServer.layer(() => {
      server = Http.createServer(options?.http ?? {})
      return server
    }, { port: 0, host: "127.0.0.1" })
    const router = options?.extend?.(SseRoute.router) ?? SseRoute.router
    const serve = options?.middleware === undefined
      ? HttpServer.serve(router)
      : HttpServer.serve(router, options.middleware)
    const served = options?.tracer === false ? serve.pipe(HttpMiddleware.withTracerDisabledWhen(() => true)) : serve
    const appLayer = Layer.mergeAll(served, Layer.effectDiscard(Effect.void)).pipe(
      Layer.provideMerge(SseRoute.layer(options?.route)),
      Layer.provideMerge(busLayer(options?.bus, options?.wrapLog)),
      Layer.provideMerge(serverLayer)
    )
    const context = yield* Layer.build(appLayer).pipe(Effect.orDie)
    const address = yield* HttpServer.addressWith((a) => Effect.succeed(a)).pipe(Effect.provide(context))
    const port = address._tag === "TcpAddress" ? address.port : 0
    return {
      url: `http://127.0.0.1:${port}`,
      port,
      bus: (yield* EventBus.EventBus.pipe(Effect.provide(context))),
      route: (yield* SseRoute.SseRoute.pipe(Effect.provide(context))),
      server: server!
    }
  })

const busLayer = (
  options: (EventBus.Options & { readonly log?: EventLog.MemoryOptions | undefined }) | undefined,
  wrapLog: ((log: EventLog.EventLog["Type"]) => EventLog.EventLog["Type"]) | undefined
) =>
  wrapLog === undefined
    ? EventBus.layerMemory(options)
    : Layer.provideMerge(
      EventBus.layer(options),
      Layer.effect(EventLog.EventLog, Effect.map(EventLog.makeMemory(options?.log), wrapLog))
    )

/**
 * A log whose `read` (the resume replay) takes `minMillis`..`maxMillis` ms of real time, like `XRANGE`
 * on a remote Redis. `onRead(after)` runs when a read starts: the subscriber is registered, nothing
 * has been written to its response yet.
 */
export const slowReads = (maxMillis: number, options?: {
  readonly minMillis?: number
  readonly onRead?: (after: number) => void
  /** The source of the delays, in [0, 1) (seed it in randomized tests). */
  readonly random?: () => number
}) =>
(log: EventLog.EventLog["Type"]): EventLog.EventLog["Type"] => ({
  ...log,
  read: (after, readOptions) =>
    Effect.zipRight(
      Effect.async<void>((resume) => {
        options?.onRead?.(after)
        const min = options?.minMillis ?? 0
        const timer = setTimeout(() => resume(Effect.void), min + Math.floor((options?.random ?? Math.random)() * (maxMillis - min + 1)))
        return Effect.sync(() => clearTimeout(timer))
      }),
      log.read(after, readOptions)
    )
})

/**
 * A log whose `read` hands out fresh copies of its events, like a remote backend (Redis): replay
 * pages then hold memory of their own and count against the bus's replay budget.
 */
export const copyingReads = (log: EventLog.EventLog["Type"]): EventLog.EventLog["Type"] => ({
  ...log,
  sharesEvents: false,
  read: (after, readOptions) =>
    Effect.map(log.read(after, readOptions), (page) => ({ ...page, events: page.events.map((e) => Event.make({ ...e })) }))
})
