/** @internal */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Chunk from "effect/Chunk"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Http from "node:http"
import { Readable } from "node:stream"
import type * as Event from "../Event.js"
import * as EventBus from "../EventBus.js"
import * as SseRoute from "../SseRoute.js"
import { validatePattern } from "./event.js"
import { formatId } from "./event.js"
import { subscriberOf, type Subscriber } from "./eventBus.js"
import { renderAll } from "./prometheus.js"
import { comment, frameOf, frameText, retry } from "./sse.js"
import { endFrame, Writer } from "./sseWriter.js"

const RETRY_FLOOR = 500
const REPLAY_CHUNK_BYTES = 64 * 1024
const HEARTBEAT = ":\n\n"

const millis = (input: Duration.DurationInput | undefined, fallback: number): number =>
  input === undefined ? fallback : Duration.toMillis(Duration.decode(input))

// A misconfigured route fails when its layer is built, not on every request.
const positiveOrUnset = (name: string, value: number | undefined): number | undefined => {
  if (value !== undefined && !(Number.isFinite(value) && value >= 1)) {
    throw new RangeError(`SseRoute option ${name} must be a positive number, got ${value}`)
  }
  return value
}

const positiveMillis = (name: string, value: number): number => {
  if (!(value > 0)) throw new RangeError(`SseRoute option ${name} must be a positive duration, got ${value} ms`)
  return value
}

/** @internal */
export const resolve = (options: SseRoute.Options | undefined): SseRoute.ResolvedOptions => {
  const retryMin = Math.max(RETRY_FLOOR, millis(options?.retryMin, 1_000))
  const retryMax = Math.max(retryMin, millis(options?.retryMax, 5_000))
  const maxLifetime = options?.maxLifetime === undefined ? undefined : millis(options.maxLifetime, 0)
  return {
    path: options?.path ?? "/events",
    statsPath: options?.statsPath ?? "/stats",
    metricsPath: options?.metricsPath ?? "/metrics",
    heartbeat: Math.max(10, millis(options?.heartbeat, 15_000)),
    retryMin,
    retryMax,
    writeDeadline: Math.max(10, millis(options?.writeDeadline, 10_000)),
    maxLifetime: maxLifetime !== undefined && maxLifetime > 0 ? maxLifetime : undefined,
    drainTimeout: Math.max(0, millis(options?.drainTimeout, 1_000)),
    stallTimeout: positiveMillis("stallTimeout", millis(options?.stallTimeout, 30_000)),
    maxEvents: positiveOrUnset("maxEvents", options?.maxEvents),
    maxBytes: positiveOrUnset("maxBytes", options?.maxBytes),
    maxReplay: positiveOrUnset("maxReplay", options?.maxReplay),
    maxTopics: options?.maxTopics ?? 32,
    publish: options?.publish ?? false,
    maxBodyBytes: options?.maxBodyBytes ?? 64 * 1024,
    authorize: options?.authorize,
    chunked: options?.chunked ?? false
  }
}

const errorJson = (status: number, error: string, message: string, headers?: Record<string, string>) =>
  HttpServerResponse.unsafeJson({ error, message }, { status, ...(headers === undefined ? {} : { headers }) })

const SSE_HEADERS = {
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no"
} as const

const CLOSE_DELIMITED_HEADERS = { ...SSE_HEADERS, connection: "close" } as const

const rawResponse = (request: HttpServerRequest.HttpServerRequest): Http.ServerResponse | undefined => {
  try {
    const res = NodeHttpServerRequest.toServerResponse(request) as Http.ServerResponse | undefined
    return res !== undefined && typeof res.write === "function" && typeof res.destroy === "function" ? res : undefined
  } catch {
    return undefined
  }
}

const rawRequest = (request: HttpServerRequest.HttpServerRequest): Http.IncomingMessage | undefined => {
  try {
    const req = NodeHttpServerRequest.toIncomingMessage(request) as Http.IncomingMessage | undefined
    return req !== undefined && typeof req.on === "function" && typeof req.resume === "function" ? req : undefined
  } catch {
    return undefined
  }
}

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  if (parts.length === 1) return parts[0]!
  let total = 0
  for (const p of parts) total += p.byteLength
  return Buffer.concat(parts as Array<Uint8Array>, total)
}

/** Replay frames grouped into chunks of about 64 KiB: written at the socket's pace by the server. */
const replayChunks = (events: ReadonlyArray<Event.Event>): Array<Uint8Array> => {
  const chunks: Array<Uint8Array> = []
  let parts: Array<Uint8Array> = []
  let size = 0
  for (const event of events) {
    const frame = frameOf(event)
    parts.push(frame)
    size += frame.byteLength
    if (size >= REPLAY_CHUNK_BYTES) {
      chunks.push(concat(parts))
      parts = []
      size = 0
    }
  }
  if (parts.length > 0) chunks.push(concat(parts))
  return chunks
}

const resetFrame = (outcome: EventBus.ResumeOutcome): string =>
  outcome._tag === "Reset"
    ? frameText({
      id: formatId(outcome.head),
      event: "reset",
      data: JSON.stringify({ reason: outcome.reason, head: formatId(outcome.head), message: outcome.message })
    })
    : ""

/** @internal */
export const make = (
  options?: SseRoute.Options
): Effect.Effect<SseRoute.SseRoute["Type"], never, EventBus.EventBus | Scope.Scope> =>
  Effect.gen(function*() {
    const config = resolve(options)
    const bus = yield* EventBus.EventBus
    const writer = new Writer({
      heartbeatMillis: config.heartbeat,
      writeDeadlineMillis: config.writeDeadline,
      stallTimeoutMillis: config.stallTimeout
    })
    const portable = new Set<Subscriber>()
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

    const drain = Effect.gen(function*() {
      draining = true
      for (const conn of writer.connections) {
        conn.closeSocketOnFinish = true
        conn.sub.end("shutdown")
      }
      for (const sub of portable) sub.end("shutdown")
      yield* waitUntil(() => writer.connections.size === 0 && portable.size === 0, config.drainTimeout)
      for (const conn of Array.from(writer.connections)) {
        conn.res.destroy()
        conn.detach()
      }
    })
    yield* Effect.addFinalizer(() => drain)

    const jitteredRetry = () => config.retryMin + Math.floor(Math.random() * (config.retryMax - config.retryMin + 1))
    const expiry = (now: number) =>
      config.maxLifetime === undefined ? undefined : now + Math.floor(config.maxLifetime * (0.85 + Math.random() * 0.15))

    const authorize = (
      request: HttpServerRequest.HttpServerRequest,
      topics: ReadonlyArray<string>,
      action: "subscribe" | "publish"
    ): Effect.Effect<HttpServerResponse.HttpServerResponse | undefined> => {
      const hook = config.authorize
      if (hook === undefined) return Effect.succeed(undefined)
      return hook(request, topics, action).pipe(
        Effect.as(undefined),
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

    const closingResponse = (reason: string) =>
      HttpServerResponse.stream(
        Stream.make(Buffer.from(`${retry(jitteredRetry())}${comment("sluice")}`, "utf8") as Uint8Array, endFrame(reason)),
        { contentType: "text/event-stream", headers: { ...SSE_HEADERS, connection: "close" } }
      )

    const events = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const url = new URL(request.url, "http://localhost")
      const topics = url.searchParams.getAll("topic")
      if (topics.length > config.maxTopics) {
        return errorJson(400, "invalid_topic", `at most ${config.maxTopics} topics per subscription`)
      }
      for (const topic of topics) {
        const error = validatePattern(topic)
        if (error !== undefined) return errorJson(400, "invalid_topic", error)
      }
      const denied = yield* authorize(request, topics, "subscribe")
      if (denied !== undefined) return denied
      if (draining) return closingResponse("shutdown")

      const header = request.headers["last-event-id"]
      const after = header !== undefined ? header : url.searchParams.get("lastEventId") ?? undefined
      const subscribeOptions: EventBus.SubscribeOptions = {
        topics,
        after,
        maxEvents: config.maxEvents,
        maxBytes: config.maxBytes,
        maxReplay: config.maxReplay,
        stallTimeout: Duration.millis(config.stallTimeout)
      }
      const opening = `${retry(jitteredRetry())}${comment("sluice")}`
      const res = rawResponse(request)
      if (res !== undefined) return yield* nodeResponse(subscribeOptions, opening, res)
      return HttpServerResponse.stream(portableBody(subscribeOptions, opening), {
        contentType: "text/event-stream",
        headers: SSE_HEADERS
      })
    })

    const unavailableBody = (opening: string) => Stream.make(Buffer.from(opening, "utf8"), endFrame("unavailable"))

    /**
     * The Node fast path. The subscription lives in the request scope; the response body is an empty
     * `Readable` that only ends the response, so the request's fiber waits on one promise and no
     * `Stream` runs per connection. Every byte — opening, replay, live, end — is written by the
     * central writer straight to the raw response, replay at the socket's pace.
     */
    const nodeResponse = (subscribeOptions: EventBus.SubscribeOptions, opening: string, res: Http.ServerResponse) =>
      Effect.gen(function*() {
        const result = yield* Effect.either(bus.subscribe(subscribeOptions))
        if (Either.isLeft(result)) return closingResponse("unavailable")
        const subscription = result.right
        const sub = subscriberOf(subscription)
        const conn = writer.attach(sub, res, expiry(Date.now()), [
          Buffer.from(opening + resetFrame(subscription.outcome), "utf8"),
          ...replayChunks(subscription.replay)
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
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            conn.detach()
            if (!body.destroyed) body.destroy()
          })
        )
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
        if (Either.isLeft(result)) return unavailableBody(opening)
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

    const publish = Effect.gen(function*() {
      if (!config.publish) {
        return errorJson(405, "method_not_allowed", "publishing over HTTP is not enabled", { allow: "GET" })
      }
      const request = yield* HttpServerRequest.HttpServerRequest
      const contentType = request.headers["content-type"] ?? ""
      if (!/^application\/json\s*(;|$)/i.test(contentType)) {
        return errorJson(415, "unsupported_media_type", "content type must be application/json")
      }
      const declared = Number(request.headers["content-length"] ?? "0")
      if (Number.isFinite(declared) && declared > config.maxBodyBytes) {
        return errorJson(413, "payload_too_large", `body is larger than ${config.maxBodyBytes} bytes`, {
          connection: "close"
        })
      }
      const body = yield* readLimited(request, config.maxBodyBytes)
      if (body === "too-large") {
        return errorJson(413, "payload_too_large", `body is larger than ${config.maxBodyBytes} bytes`, {
          connection: "close"
        })
      }
      if (body === "failed") return errorJson(400, "bad_request", "the request body could not be read")
      let parsed: unknown
      try {
        parsed = JSON.parse(body)
      } catch {
        return errorJson(400, "invalid_json", "body is not valid JSON")
      }
      const input = toEventInput(parsed)
      if (typeof input === "string") return errorJson(400, "invalid_event", input)
      const denied = yield* authorize(request, [input.topic], "publish")
      if (denied !== undefined) return denied
      const published = yield* Effect.either(bus.publish(input))
      if (Either.isLeft(published)) {
        const error = published.left
        if (error.reason === "Unavailable") return errorJson(503, "unavailable", "the event log is unavailable")
        if (error.reason === "TooLarge") return errorJson(413, "payload_too_large", error.message)
        return errorJson(400, "invalid_event", error.message)
      }
      return HttpServerResponse.unsafeJson({ id: formatId(published.right.id) }, { status: 201 })
    })

    const stats = Effect.map(bus.stats, (s) =>
      HttpServerResponse.unsafeJson({
        ...s,
        sse: { connections: writer.connections.size + portable.size, draining }
      }, { headers: { "cache-control": "no-store" } }))

    // Reading the stats first brings the bus's gauges and counters up to date.
    const metrics = Effect.map(Effect.zipRight(bus.stats, renderAll), (text) =>
      HttpServerResponse.text(text, {
        contentType: "text/plain; version=0.0.4; charset=utf-8",
        headers: { "cache-control": "no-store" }
      }))

    return SseRoute.SseRoute.of({
      options: config,
      events,
      publish,
      stats,
      metrics,
      drain,
      connections: Effect.sync(() => writer.connections.size + portable.size)
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

const readLimited = (
  request: HttpServerRequest.HttpServerRequest,
  limit: number
): Effect.Effect<string | "too-large" | "failed"> => {
  const incoming = rawRequest(request)
  return incoming === undefined ? readLimitedPortable(request, limit) : readLimitedNode(incoming, limit)
}

/**
 * Reads a Node request body up to `limit`. Past the limit it stops collecting but lets the rest flow
 * and drop: the platform's body streams destroy an unfinished request, which resets the socket, and
 * the client then never reads the `413` (a chunked upload over the limit saw "socket hang up").
 */
const readLimitedNode = (incoming: Http.IncomingMessage, limit: number): Effect.Effect<string | "too-large" | "failed"> =>
  Effect.async((resume) => {
    const parts: Array<Buffer> = []
    let size = 0
    const stop = () => {
      incoming.off("data", onData)
      incoming.off("end", onEnd)
      incoming.off("error", onError)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.byteLength
      if (size <= limit) return void parts.push(chunk)
      stop()
      incoming.resume()
      resume(Effect.succeed("too-large" as const))
    }
    const onEnd = () => {
      stop()
      resume(Effect.succeed(Buffer.concat(parts, size).toString("utf8")))
    }
    const onError = () => {
      stop()
      resume(Effect.succeed("failed" as const))
    }
    incoming.on("data", onData)
    incoming.on("end", onEnd)
    incoming.on("error", onError)
    return Effect.sync(stop)
  })

const readLimitedPortable = (
  request: HttpServerRequest.HttpServerRequest,
  limit: number
): Effect.Effect<string | "too-large" | "failed"> =>
  Stream.runFoldEffect(
    request.stream,
    { size: 0, parts: [] as Array<Uint8Array> },
    (acc, chunk) => {
      acc.size += chunk.byteLength
      if (acc.size > limit) return Effect.fail("too-large" as const)
      acc.parts.push(chunk)
      return Effect.succeed(acc)
    }
  ).pipe(
    Effect.map((acc) => Buffer.concat(acc.parts, acc.size).toString("utf8")),
    Effect.catchAll((e) => Effect.succeed(e === "too-large" ? "too-large" as const : "failed" as const))
  )

const toEventInput = (value: unknown): Event.EventInput | string => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "body must be a JSON object {topic, type?, data}"
  }
  const record = value as Record<string, unknown>
  if (typeof record.topic !== "string") return "topic must be a string"
  if (record.type !== undefined && typeof record.type !== "string") return "type must be a string"
  if (!("data" in record) || record.data === undefined) return "data is required"
  const data = typeof record.data === "string" ? record.data : JSON.stringify(record.data)
  return record.type === undefined ? { topic: record.topic, data } : { topic: record.topic, type: record.type, data }
}

/** @internal */
export const optionsFromEnv = (base?: SseRoute.Options): Config.Config<SseRoute.Options> => {
  const duration = (name: string) => Config.option(Config.duration(name))
  const int = (name: string) => Config.option(Config.integer(name))
  return Config.all({
    path: Config.option(Config.string("SLUICE_SSE_PATH")),
    heartbeat: duration("SLUICE_SSE_HEARTBEAT"),
    retryMin: duration("SLUICE_SSE_RETRY_MIN"),
    retryMax: duration("SLUICE_SSE_RETRY_MAX"),
    writeDeadline: duration("SLUICE_SSE_WRITE_DEADLINE"),
    maxLifetime: duration("SLUICE_SSE_MAX_LIFETIME"),
    stallTimeout: duration("SLUICE_SSE_STALL_TIMEOUT"),
    maxEvents: int("SLUICE_SSE_MAX_EVENTS"),
    maxBytes: int("SLUICE_SSE_MAX_BYTES"),
    maxReplay: int("SLUICE_SSE_MAX_REPLAY"),
    publish: Config.option(Config.boolean("SLUICE_SSE_PUBLISH")),
    maxBodyBytes: int("SLUICE_SSE_MAX_BODY_BYTES"),
    chunked: Config.option(Config.boolean("SLUICE_SSE_CHUNKED"))
  }).pipe(Config.map((env) => {
    const out: Record<string, unknown> = { ...base }
    for (const [key, value] of Object.entries(env) as Array<[string, Option.Option<unknown>]>) {
      if (Option.isSome(value)) out[key] = value.value
    }
    return out as SseRoute.Options
  }))
}
