/** @internal */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Http from "node:http"
import { Readable } from "node:stream"
import * as EventBus from "../EventBus.js"
import * as SseRoute from "../SseRoute.js"
import { compileAccess, refuseSubscription } from "./access.js"
import { preflight, withCors } from "./cors.js" // CORS hook (1/4)
import { formatId, validatePattern } from "./event.js"
import { subscriberOf, type Subscriber } from "./eventBus.js"
import { endRaw, guardSocket, isQueued, rawRequest, rawResponse, resetSocket } from "./nodeEdge.js"
import { renderAll } from "./prometheus.js"
import { errorJson, makePublish } from "./publishRoute.js"
import { resolve } from "./routeOptions.js"
import { ServerGuard } from "./serverGuard.js"
import { comment, frameOf, frameText, retry } from "./sse.js"
import { endFrame, Writer } from "./sseWriter.js"

export { optionsFromEnv, resolve } from "./routeOptions.js"

const HEARTBEAT = ":\n\n"

const SSE_HEADERS = {
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no"
} as const

const CLOSE_DELIMITED_HEADERS = { ...SSE_HEADERS, connection: "close" } as const

const resetFrame = (outcome: EventBus.ResumeOutcome): string =>
  outcome._tag === "Reset"
    ? frameText({
      id: formatId(outcome.head),
      event: "reset",
      data: JSON.stringify({ reason: outcome.reason, head: formatId(outcome.head), message: outcome.message })
    })
    : ""

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  if (parts.length === 1) return parts[0]!
  let total = 0
  for (const p of parts) total += p.byteLength
  return Buffer.concat(parts as Array<Uint8Array>, total)
}

/**
 * Answers a response whose Node response is queued behind another on a pipelined connection by
 * writing it raw: the platform would wait for its `'finish'`, which never comes if the connection
 * closes first. Other responses pass through.
 */
const respond = (
  request: HttpServerRequest.HttpServerRequest,
  response: HttpServerResponse.HttpServerResponse
): HttpServerResponse.HttpServerResponse => {
  const res = rawResponse(request)
  if (res === undefined || (!isQueued(res) && request.method !== "HEAD")) return response
  const body = response.body
  const bytes = body._tag === "Uint8Array" ? body.body : new Uint8Array(0)
  const headers: Record<string, string> = { ...response.headers }
  if (body._tag === "Uint8Array") headers["content-type"] = body.contentType
  endRaw(res, response.status, headers, bytes)
  return response
}

/** @internal */
export const make = (
  options?: SseRoute.Options
): Effect.Effect<SseRoute.SseRoute["Type"], never, EventBus.EventBus | Scope.Scope> =>
  Effect.gen(function*() {
    const config = resolve(options)
    const bus = yield* EventBus.EventBus
    const runCallback = Runtime.runCallback(yield* Effect.runtime<never>())
    const writer = new Writer({
      heartbeatMillis: config.heartbeat,
      writeDeadlineMillis: config.writeDeadline,
      stallTimeoutMillis: config.stallTimeout
    }, (conn, onPage) => {
      const replay = conn.sub.replay
      if (replay === undefined) return onPage(undefined)
      runCallback(replay.next, { onExit: (exit) => onPage(Exit.isSuccess(exit) ? exit.value : "failed") })
    })
    const portable = new Set<Subscriber>()
    const servers = new ServerGuard()
    let draining = false

    // Real timers, not the Effect clock: the writer works on real sockets and real time.
    const tickEvery = Math.min(
      250,
      Math.max(10, Math.floor(Math.min(config.heartbeat, config.writeDeadline, config.maxLifetime ?? Infinity) / 4))
    )
    yield* Effect.acquireRelease(
      Effect.sync(() => setInterval(() => writer.tick(Date.now()), tickEvery)),
      (timer) => Effect.sync(() => clearInterval(timer))
    )

    const openStreams = () => writer.connections.size + portable.size

    const endAll = () => {
      draining = true
      for (const conn of writer.connections) {
        conn.closeSocketOnFinish = true
        conn.sub.end("shutdown")
      }
      for (const sub of portable) sub.end("shutdown")
    }

    const destroyLeft = () => {
      for (const conn of Array.from(writer.connections)) {
        resetSocket(conn.res)
        conn.detach()
      }
    }

    const drain = Effect.gen(function*() {
      endAll()
      yield* waitUntil(() => openStreams() === 0, config.drainTimeout)
      destroyLeft()
    })

    /**
     * Shutdown, in a fixed order, within `drainTimeout`: stop accepting and answer late requests;
     * end every stream and wait for them; close keep-alive connections as they turn idle and wait
     * for the rest to finish; at the deadline destroy whatever is left.
     */
    const shutdown = Effect.gen(function*() {
      const deadline = Date.now() + config.drainTimeout
      servers.stopAccepting(answerLate)
      endAll()
      yield* waitUntil(() => openStreams() === 0, config.drainTimeout)
      destroyLeft()
      yield* waitUntil(() => {
        servers.closeIdle()
        return servers.closed
      }, Math.max(0, deadline - Date.now()))
      servers.destroyAll()
    })
    yield* Effect.addFinalizer(() => shutdown)

    const jitteredRetry = () => config.retryMin + Math.floor(Math.random() * (config.retryMax - config.retryMin + 1))
    const expiry = (now: number) =>
      config.maxLifetime === undefined ? undefined : now + Math.floor(config.maxLifetime * (0.85 + Math.random() * 0.15))
    const opening = () => `${retry(jitteredRetry())}${comment("sluice")}`

    const closingBytes = (reason: string) =>
      Buffer.concat([Buffer.from(opening(), "utf8"), endFrame(reason)])

    const closingResponse = (reason: string) =>
      HttpServerResponse.uint8Array(closingBytes(reason), {
        contentType: "text/event-stream",
        headers: CLOSE_DELIMITED_HEADERS
      })

    /** A request that arrived after the platform stopped listening, during shutdown. */
    const answerLate = (req: Http.IncomingMessage, res: Http.ServerResponse) => {
      const path = new URL(req.url ?? "/", "http://localhost").pathname
      if (req.method === "GET" && path === config.path) {
        return endRaw(res, 200, { ...CLOSE_DELIMITED_HEADERS, "content-type": "text/event-stream" }, closingBytes("shutdown"))
      }
      const body = JSON.stringify({ error: "shutting_down", message: "the server is shutting down; retry on another node" })
      endRaw(res, 503, { "content-type": "application/json", connection: "close", "retry-after": "1" }, body)
    }

    const authorize = (
      request: HttpServerRequest.HttpServerRequest,
      topics: ReadonlyArray<string>,
      action: "subscribe" | "publish"
    ): Effect.Effect<HttpServerResponse.HttpServerResponse | { readonly allows: ((topic: string) => boolean) | undefined }> => {
      const hook = config.authorize
      if (hook === undefined) return Effect.succeed({ allows: undefined })
      return hook(request, topics, action).pipe(
        Effect.map((access) => {
          const allows = compileAccess(access)
          if (typeof allows === "string") return errorJson(500, "internal", "authorization failed")
          if (action === "subscribe") {
            const refused = refuseSubscription(access, allows, topics)
            if (refused !== undefined) return errorJson(403, "forbidden", refused)
          }
          return { allows }
        }),
        Effect.catchAll((e) =>
          Effect.succeed(
            e._tag === "Unauthorized"
              ? errorJson(401, "unauthorized", e.message)
              : errorJson(403, "forbidden", e.message)
          )
        ),
        Effect.catchAllDefect(() => Effect.succeed(errorJson(500, "internal", "authorization failed")))
      )
    }

    const parseTopics = (url: URL): ReadonlyArray<string> | HttpServerResponse.HttpServerResponse => {
      const topics = url.searchParams.getAll("topic")
      if (topics.length > config.maxTopics) {
        return errorJson(400, "invalid_topic", `at most ${config.maxTopics} topics per subscription`)
      }
      for (const topic of topics) {
        const error = validatePattern(topic)
        if (error !== undefined) return errorJson(400, "invalid_topic", error)
      }
      return topics
    }

    const eventsResponse = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      servers.track(rawRequest(request))
      const url = new URL(request.url, "http://localhost")
      const topics = parseTopics(url)
      if (!Array.isArray(topics)) return topics as HttpServerResponse.HttpServerResponse
      const access = yield* authorize(request, topics, "subscribe")
      if (!("allows" in access)) return access
      if (request.method === "HEAD") {
        return HttpServerResponse.empty({ status: 200, headers: { ...SSE_HEADERS, "content-type": "text/event-stream" } })
      }
      if (draining) return closingResponse("shutdown")
      const header = request.headers["last-event-id"]
      const allows = access.allows
      const subscribeOptions: EventBus.SubscribeOptions = {
        topics,
        filter: allows === undefined ? undefined : (event) => allows(event.topic),
        after: header !== undefined ? header : url.searchParams.get("lastEventId") ?? undefined,
        maxEvents: config.maxEvents,
        maxBytes: config.maxBytes,
        maxReplay: config.maxReplay,
        stallTimeout: Duration.millis(config.stallTimeout)
      }
      const res = rawResponse(request)
      if (res === undefined) {
        return HttpServerResponse.stream(portableBody(subscribeOptions, opening()), {
          contentType: "text/event-stream",
          headers: SSE_HEADERS
        })
      }
      if (isQueued(res)) {
        return errorJson(400, "pipelined", "an event stream cannot wait behind another request on one connection", {
          connection: "close"
        })
      }
      return yield* nodeResponse(subscribeOptions, opening(), res)
    })

    const events = Effect.flatMap(withCors(config.cors, eventsResponse), (response) => // CORS hook (2/4)
      Effect.map(HttpServerRequest.HttpServerRequest, (request) => respond(request, response)))

    /**
     * The Node fast path. The subscription lives in the request scope and is also bound to the
     * socket's `'close'`; the response body is an empty `Readable` that only ends the response, so
     * the request's fiber waits on one promise and no `Stream` runs per connection. Every byte —
     * opening, replay, live, end — is written by the central writer straight to the raw response,
     * the replay page by page at the socket's pace.
     */
    const nodeResponse = (subscribeOptions: EventBus.SubscribeOptions, opening: string, res: Http.ServerResponse) =>
      Effect.gen(function*() {
        const socket = res.socket!
        guardSocket(socket, config.keepAlive)
        const result = yield* Effect.either(bus.subscribe(subscribeOptions))
        if (Either.isLeft(result)) return closingResponse("unavailable")
        const subscription = result.right
        const sub = subscriberOf(subscription)
        const conn = writer.attach(sub, res, expiry(Date.now()), [
          Buffer.from(opening + resetFrame(subscription.outcome), "utf8")
        ])
        let started = false
        const body: Readable = new Readable({
          read() {
            // First read: the server has written the head and piped this body; start writing.
            if (started) return
            started = true
            writer.goLive(conn, (final) => {
              if (final.byteLength > 0 && !res.writableEnded && !res.destroyed) res.write(final)
              body.push(null)
            })
          }
        })
        const release = () => {
          conn.detach()
          if (!body.destroyed) body.destroy()
        }
        conn.onClose = release
        yield* Effect.addFinalizer(() => Effect.sync(release))
        if (socket.destroyed) {
          // The peer left while the subscription started: its 'close' already fired.
          sub.close()
          release()
        }
        if (draining) {
          conn.closeSocketOnFinish = true
          sub.end("shutdown")
        }
        if (config.chunked) {
          return HttpServerResponse.raw(body, { contentType: "text/event-stream", headers: SSE_HEADERS })
        }
        // Close-delimited body: no chunk framing around each write (RFC 9112 §6.3); Node closes the
        // socket once the response has finished.
        res.removeHeader("transfer-encoding")
        return HttpServerResponse.raw(body, { contentType: "text/event-stream", headers: CLOSE_DELIMITED_HEADERS })
      })

    const portableBody = (subscribeOptions: EventBus.SubscribeOptions, opening: string) =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const result = yield* Effect.either(bus.subscribe(subscribeOptions))
        if (Either.isLeft(result)) return Stream.make(closingBytes("unavailable") as Uint8Array)
        const subscription = result.right
        const sub = subscriberOf(subscription)
        sub.encodes = true
        yield* Effect.acquireRelease(Effect.sync(() => portable.add(sub)), () => Effect.sync(() => portable.delete(sub)))
        if (draining) sub.end("shutdown")
        if (config.maxLifetime !== undefined) {
          const lifetime = expiry(0)!
          yield* Effect.forkScoped(Effect.andThen(Effect.sleep(Duration.millis(lifetime)), subscription.end("lifetime")))
        }
        const frames = Stream.mapChunks(subscription.events, (chunk) => {
          const parts = Chunk.toReadonlyArray(chunk).map(frameOf)
          return Chunk.of(concat(parts))
        })
        const heartbeat = Stream.fromSchedule(Schedule.spaced(Duration.millis(config.heartbeat))).pipe(
          Stream.as(Buffer.from(HEARTBEAT, "latin1") as Uint8Array)
        )
        const end = Stream.fromEffect(Effect.map(subscription.ended, (reason) => endFrame(reason)))
        return Stream.concat(
          Stream.make(Buffer.from(opening + resetFrame(subscription.outcome), "utf8") as Uint8Array),
          Stream.concat(Stream.merge(frames, heartbeat, { haltStrategy: "left" }), end)
        )
      }))

    const publishResponse = makePublish({ bus, config, draining: () => draining, authorize })
    const publish = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      servers.track(rawRequest(request))
      return Effect.map(withCors(config.cors, publishResponse), (response) => respond(request, response)) // CORS hook (3/4)
    })

    const stats = Effect.map(bus.stats, (s) =>
      HttpServerResponse.unsafeJson({
        ...s,
        sse: { connections: openStreams(), draining }
      }, { headers: { "cache-control": "no-store" } }))

    // Reading the stats first brings the bus's gauges and counters up to date.
    const metrics = Effect.map(Effect.zipRight(bus.stats, renderAll), (text) =>
      HttpServerResponse.text(text, {
        contentType: "text/plain; version=0.0.4; charset=utf-8",
        headers: { "cache-control": "no-store" }
      }))

    const raw = <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
        Effect.map(handler, (response) => respond(request, response)))

    return SseRoute.SseRoute.of({
      options: config,
      events,
      publish,
      preflight: raw(preflight(config.cors)), // CORS hook (4/4)
      stats: raw(stats),
      metrics: raw(metrics),
      drain,
      connections: Effect.sync(openStreams)
    })
  })

/** Polls a condition on real time (never the TestClock) until it holds or the deadline passes. */
const waitUntil = (done: () => boolean, timeoutMillis: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const deadline = Date.now() + timeoutMillis
    let timer: ReturnType<typeof setTimeout> | undefined
    const check = () => {
      if (done() || Date.now() >= deadline) resume(Effect.void)
      else timer = setTimeout(check, 5)
    }
    check()
    return Effect.sync(() => clearTimeout(timer))
  })
