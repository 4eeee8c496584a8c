/**
 * The route's wiring: one central writer on the route's clock, the stream handler choosing its
 * transport, the publish handler, stats and metrics, and shutdown.
 * @internal
 */
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Random from "effect/Random"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Http from "node:http"
import type * as EventBus from "../EventBus.js"
import type * as SseRoute from "../SseRoute.js"
import { rawSubscribe, type SubscriberHandle } from "./eventBus.js"
import { endRaw, guardSocket, isQueued, rawRequest, rawResponse } from "./nodeEdge.js"
import { CLOSE_DELIMITED_HEADERS, NodeSession, nodeStreamResponse, SSE_HEADERS } from "./nodeTransport.js"
import { PortableSession, portableBody } from "./portableTransport.js"
import { renderAll } from "./prometheus.js"
import { makePublish } from "./publishRoute.js"
import { authorize, errorJson, readStreamRequest, respond, type StreamRequest } from "./request.js"
import { ServerGuard } from "./serverGuard.js"
import type { Session } from "./session.js"
import { endFrame, opening, resetFrame } from "./sse.js"
import { Writer } from "./writer.js"

/** @internal */
export const make = (
  config: SseRoute.ResolvedOptions,
  bus: EventBus.EventBus["Type"]
): Effect.Effect<SseRoute.SseRoute["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const runCallback = Runtime.runCallback(yield* Effect.runtime<never>())
    const writer = new Writer(
      config.heartbeat,
      config.writeDeadline,
      config.stallTimeout,
      () => clock.unsafeCurrentTimeMillis(),
      (session, onPage) => {
        const replay = session.sub.replaying
        if (replay === undefined) return onPage(undefined)
        runCallback(replay.next, { onExit: (exit) => onPage(Exit.isSuccess(exit) ? exit.value : "failed") })
      }
    )
    const servers = new ServerGuard()
    let draining = false

    // One fiber per route, on the route's clock: heartbeats, lifetimes, stalls, write deadlines.
    const tickEvery = Math.min(
      250,
      Math.max(10, Math.floor(Math.min(config.heartbeat, config.writeDeadline, config.maxLifetime ?? Infinity) / 4))
    )
    yield* Effect.sync(() => writer.tick(clock.unsafeCurrentTimeMillis())).pipe(
      Effect.repeat(Schedule.spaced(Duration.millis(tickEvery))),
      Effect.interruptible,
      Effect.forkScoped
    )

    const endAll = () => {
      draining = true
      for (const session of writer.sessions) {
        if (session instanceof NodeSession) session.closeSocketOnFinish = true
        session.end("shutdown")
      }
    }

    const destroyLeft = () => {
      for (const session of Array.from(writer.sessions)) session.destroy()
    }

    /**
     * Completes once `latch` does or after `millis` on the route's clock, whichever is first. It
     * never needs to be interrupted: shutdown runs in a finalizer, where nothing can be.
     */
    const within = (latch: Effect.Effect<void>, millis: number) =>
      Effect.async<void>((resume) => {
        const cancels: Array<() => void> = []
        let done = false
        const finish = () => {
          if (done) return
          done = true
          for (const cancel of cancels) cancel()
          resume(Effect.void)
        }
        cancels.push(runCallback(latch, { onExit: finish }))
        if (!done) cancels.push(runCallback(clock.sleep(Duration.millis(Math.max(0, millis))), { onExit: finish }))
        if (done) for (const cancel of cancels) cancel()
      })

    /** Ends every stream and waits for them (a latch), at most `millis`; then destroys the rest. */
    const drainWithin = (millis: number) =>
      Effect.gen(function*() {
        endAll()
        yield* within(writer.whenEmpty, millis)
        destroyLeft()
      })

    /**
     * Shutdown, in a fixed order, within `drainTimeout`: stop accepting and answer late requests;
     * end every stream and wait for them; close keep-alive connections as they turn idle and wait
     * for the rest to finish; at the deadline destroy whatever is left.
     */
    const shutdown = Effect.gen(function*() {
      const deadline = clock.unsafeCurrentTimeMillis() + config.drainTimeout
      servers.stopAccepting(answerLate)
      yield* drainWithin(config.drainTimeout)
      servers.closeIdle()
      yield* within(servers.whenClosed, deadline - clock.unsafeCurrentTimeMillis())
      servers.destroyAll()
    })
    yield* Effect.addFinalizer(() => shutdown)

    const retryMillis = Random.nextIntBetween(config.retryMin, config.retryMax + 1)
    const expiry = Effect.gen(function*() {
      if (config.maxLifetime === undefined) return undefined
      const jitter = yield* Random.nextRange(0.85, 1)
      return clock.unsafeCurrentTimeMillis() + Math.floor(config.maxLifetime * jitter)
    })

    const closingBytes = (retry: number, reason: string) =>
      Buffer.concat([Buffer.from(opening(retry), "utf8"), endFrame(reason)])

    const closingResponse = (reason: string) =>
      Effect.map(retryMillis, (retry) =>
        HttpServerResponse.uint8Array(closingBytes(retry, reason), {
          contentType: "text/event-stream",
          headers: CLOSE_DELIMITED_HEADERS
        }))

    /** A request that arrived after the platform stopped listening, during shutdown. */
    const answerLate = (req: Http.IncomingMessage, res: Http.ServerResponse) => {
      const path = new URL(req.url ?? "/", "http://localhost").pathname
      if (req.method === "GET" && path === config.path) {
        const retry = config.retryMin + Math.floor(Math.random() * (config.retryMax - config.retryMin + 1))
        const headers = { ...CLOSE_DELIMITED_HEADERS, "content-type": "text/event-stream" }
        return endRaw(res, 200, headers, closingBytes(retry, "shutdown"))
      }
      const body = JSON.stringify({ error: "shutting_down", message: "the server is shutting down; retry on another node" })
      endRaw(res, 503, { "content-type": "application/json", connection: "close", "retry-after": "1" }, body)
    }

    /** Subscribes for a session of either transport; the session is made once the outcome is known. */
    const subscribeFor = <S extends Session>(
      stream: StreamRequest,
      encodes: boolean,
      makeSession: (sub: SubscriberHandle, backlog: Uint8Array, expiresAt: number | undefined) => S
    ) =>
      Effect.gen(function*() {
        let session: S | undefined
        const subscribed = yield* Effect.either(rawSubscribe(bus, {
          topics: stream.topics,
          filter: stream.allows === undefined ? undefined : ((allows) => (event) => allows(event.topic))(stream.allows),
          after: stream.after,
          maxEvents: config.maxEvents,
          maxBytes: config.maxBytes,
          maxReplay: config.maxReplay,
          stallTimeout: Duration.millis(config.stallTimeout)
        }, { encodes, onReady: () => session !== undefined && writer.markDirty(session) }))
        if (Either.isLeft(subscribed)) return undefined
        const { outcome, subscriber } = subscribed.right
        const backlog = Buffer.from(opening(yield* retryMillis) + resetFrame(outcome), "utf8")
        session = makeSession(subscriber, backlog, yield* expiry)
        writer.add(session)
        if (draining) session.end("shutdown")
        return session
      })

    const nodeStream = (stream: StreamRequest, res: Http.ServerResponse) =>
      Effect.gen(function*() {
        guardSocket(res.socket!, config.keepAlive)
        const session = yield* subscribeFor(stream, true, (sub, backlog, expiresAt) =>
          new NodeSession(writer, sub, res, backlog, expiresAt))
        if (session === undefined) return yield* closingResponse("unavailable")
        if (draining) session.closeSocketOnFinish = true
        return yield* nodeStreamResponse(session, config.chunked)
      })

    const portableStream = (stream: StreamRequest) =>
      HttpServerResponse.stream(
        Stream.unwrapScoped(Effect.gen(function*() {
          const session = yield* subscribeFor(stream, true, (sub, backlog, expiresAt) =>
            new PortableSession(writer, sub, backlog, expiresAt))
          if (session === undefined) return Stream.make(closingBytes(yield* retryMillis, "unavailable") as Uint8Array)
          return portableBody(session)
        })),
        { contentType: "text/event-stream", headers: SSE_HEADERS }
      )

    const eventsResponse = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      servers.track(rawRequest(request))
      const stream = yield* readStreamRequest(config, request)
      if (!("topics" in stream)) return stream
      if (request.method === "HEAD") {
        return HttpServerResponse.empty({ status: 200, headers: { ...SSE_HEADERS, "content-type": "text/event-stream" } })
      }
      if (draining) return yield* closingResponse("shutdown")
      const res = rawResponse(request)
      if (res === undefined) return portableStream(stream)
      if (isQueued(res)) {
        return errorJson(400, "pipelined", "an event stream cannot wait behind another request on one connection", {
          connection: "close"
        })
      }
      return yield* nodeStream(stream, res)
    })

    const raw = <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
        servers.track(rawRequest(request))
        return Effect.map(handler, (response) => respond(request, response))
      })

    const publish = makePublish({
      bus,
      config,
      draining: () => draining,
      authorize: (request, topics, action) => authorize(config, request, topics, action)
    })

    const stats = Effect.map(bus.stats, (s) =>
      HttpServerResponse.unsafeJson({
        ...s,
        sse: { connections: writer.sessions.size, draining }
      }, { headers: { "cache-control": "no-store" } }))

    // Reading the stats first brings the bus's gauges and counters up to date.
    const metrics = Effect.map(Effect.zipRight(bus.stats, renderAll), (text) =>
      HttpServerResponse.text(text, {
        contentType: "text/plain; version=0.0.4; charset=utf-8",
        headers: { "cache-control": "no-store" }
      }))

    const service: SseRoute.SseRoute["Type"] = {
      options: config,
      events: raw(eventsResponse),
      publish: raw(publish),
      stats: raw(stats),
      metrics: raw(metrics),
      drain: drainWithin(config.drainTimeout),
      connections: Effect.sync(() => writer.sessions.size)
    }
    return service
  })

/**
 * The classic router's single catch-all route: the handler for the request's path and method at
 * the configured paths, or `RouteNotFound`.
 * @internal
 */
export const dispatch = (
  route: SseRoute.SseRoute["Type"]
): Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  HttpServerError.RouteNotFound,
  HttpServerRequest.HttpServerRequest | Scope.Scope
> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const { metricsPath, path, statsPath } = route.options
    const pathname = new URL(request.url, "http://localhost").pathname
    const get = request.method === "GET" || request.method === "HEAD"
    if (pathname === path && get) return route.events
    if (pathname === path && request.method === "POST") return route.publish
    if (pathname === statsPath && get) return route.stats
    if (pathname === metricsPath && get) return route.metrics
    return Effect.fail(new HttpServerError.RouteNotFound({ request }))
  })
