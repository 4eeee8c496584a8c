/**
 * `GET` on the events path: read the request, subscribe for a session of the transport the server
 * offers (Node, or portable), and answer with it; and the short answers that end a stream at once.
 * @internal
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Http from "node:http"
import type * as EventBus from "../EventBus.js"
import type * as SseRoute from "../SseRoute.js"
import { type RawSubscription, rawSubscribe, type SubscriberHandle } from "./eventBus.js"
import type { Lifecycle } from "./lifecycle.js"
import { endRaw, guardSocket, isQueued, rawResponse } from "./nodeEdge.js"
import { CLOSE_DELIMITED_HEADERS, handOverResponse, NodeSession, SSE_HEADERS } from "./nodeTransport.js"
import { PortableSession, portableBody } from "./portableTransport.js"
import { errorJson, parseUrl, readStreamRequest, type StreamRequest } from "./request.js"
import type { Session } from "./session.js"
import { endFrame, opening, resetFrame } from "./sse.js"
import { connectionAttributes, connectionSpan } from "./telemetry.js"

/** A whole stream that ends at once: the opening, then `event: end`. @internal */
export const closingBytes = (retry: number, reason: string): Uint8Array =>
  Buffer.concat([Buffer.from(opening(retry), "utf8"), endFrame(reason)])

/**
 * Answers a request that arrived after the platform stopped listening, during shutdown: a stream
 * request gets `200` and a clean end (`shutdown`), anything else `503`; both close the connection.
 * @internal
 */
export const answerLate = (config: SseRoute.ResolvedOptions) => (req: Http.IncomingMessage, res: Http.ServerResponse) => {
  const path = parseUrl(req.url ?? "/")?.pathname
  if (req.method === "GET" && path === config.path) {
    const retry = config.retryMin + Math.floor(Math.random() * (config.retryMax - config.retryMin + 1))
    const headers = { ...CLOSE_DELIMITED_HEADERS, "content-type": "text/event-stream" }
    return endRaw(res, 200, headers, closingBytes(retry, "shutdown"))
  }
  const body = JSON.stringify({ error: "shutting_down", message: "the server is shutting down; retry on another node" })
  endRaw(res, 503, { "content-type": "application/json", connection: "close", "retry-after": "1" }, body)
}

/** The `GET` handler of one route. @internal */
export const makeEvents = (
  config: SseRoute.ResolvedOptions,
  bus: EventBus.EventBus["Type"],
  { clock, draining, writer }: Lifecycle
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest | Scope.Scope> => {
  const retryMillis = Random.nextIntBetween(config.retryMin, config.retryMax + 1)
  const expiry = Effect.gen(function*() {
    if (config.maxLifetime === undefined) return undefined
    const jitter = yield* Random.nextRange(0.85, 1)
    return clock.unsafeCurrentTimeMillis() + Math.floor(config.maxLifetime * jitter)
  })

  const closingResponse = (reason: string) =>
    Effect.map(retryMillis, (retry) =>
      HttpServerResponse.uint8Array(closingBytes(retry, reason), {
        contentType: "text/event-stream",
        headers: CLOSE_DELIMITED_HEADERS
      }))

  const subscribeOptions = (stream: StreamRequest): EventBus.SubscribeOptions => {
    const allows = stream.allows
    return {
      topics: stream.topics,
      filter: allows === undefined ? undefined : (event) => allows(event.topic),
      after: stream.after,
      maxEvents: config.maxEvents,
      maxBytes: config.maxBytes,
      maxReplay: config.maxReplay,
      stallTimeout: Duration.millis(config.stallTimeout)
    }
  }

  /**
   * Subscribes for a session of either transport; the session is made, and added to the writer, in
   * the same uninterruptible step that makes the subscription (it owns the subscriber from there).
   */
  const subscribeFor = <S extends Session>(
    stream: StreamRequest,
    transport: "node" | "portable",
    makeSession: (sub: SubscriberHandle, backlog: Uint8Array, expiresAt: number | undefined) => S
  ) =>
    Effect.gen(function*() {
      const retry = yield* retryMillis
      const expiresAt = yield* expiry
      let session: S | undefined
      const onReady = () => session !== undefined && writer.markDirty(session)
      const options = subscribeOptions(stream)
      let outcome: EventBus.ResumeOutcome | undefined
      const adopt = (subscription: RawSubscription) => {
        outcome = subscription.outcome
        session = makeSession(subscription.subscriber, Buffer.from(opening(retry) + resetFrame(outcome), "utf8"), expiresAt)
        writer.add(session)
        if (draining()) session.end("shutdown")
        return session
      }
      const subscribed = yield* Effect.either(rawSubscribe(bus, options, { encodes: true, onReady }, adopt))
      if (Either.isLeft(subscribed)) return undefined
      const onRelease = yield* connectionSpan(connectionAttributes(transport, options, outcome!))
      if (onRelease !== undefined) subscribed.right.whenReleased(onRelease)
      return subscribed.right
    })

  const nodeStream = (stream: StreamRequest, res: Http.ServerResponse) =>
    Effect.gen(function*() {
      guardSocket(res.socket!, config.keepAlive)
      const session = yield* subscribeFor(stream, "node", (sub, backlog, expiresAt) =>
        new NodeSession(writer, sub, res, backlog, expiresAt, config.chunked))
      if (session === undefined) return yield* closingResponse("unavailable")
      if (draining()) session.closeSocketOnFinish = true
      // Released here only if the request ends before the response is handed over.
      yield* Effect.addFinalizer(() => Effect.sync(session.unclaimed))
      if (res.socket === null || res.socket.destroyed) session.release() // the peer left while the subscription started
      return handOverResponse(session)
    })

  const portableStream = (stream: StreamRequest) =>
    HttpServerResponse.stream(
      Stream.unwrapScoped(Effect.gen(function*() {
        const session = yield* subscribeFor(stream, "portable", (sub, backlog, expiresAt) =>
          new PortableSession(writer, sub, backlog, expiresAt))
        if (session === undefined) return Stream.make(closingBytes(yield* retryMillis, "unavailable"))
        yield* Effect.addFinalizer(() => Effect.sync(() => session.release()))
        return portableBody(session)
      })),
      { contentType: "text/event-stream", headers: SSE_HEADERS }
    )

  return Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const stream = yield* readStreamRequest(config, request)
    if (!("topics" in stream)) return stream
    if (request.method === "HEAD") {
      return HttpServerResponse.empty({ status: 200, headers: { ...SSE_HEADERS, "content-type": "text/event-stream" } })
    }
    if (draining()) return yield* closingResponse("shutdown")
    const res = rawResponse(request)
    if (res === undefined) return portableStream(stream)
    if (isQueued(res)) {
      return errorJson(400, "pipelined", "an event stream cannot wait behind another request on one connection", {
        connection: "close"
      })
    }
    return yield* nodeStream(stream, res)
  })
}
