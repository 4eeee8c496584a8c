/**
 * `POST` on the events path: read a bounded JSON body within a deadline, check the principal's
 * access and rate, append. Every refusal is a JSON `{ error, message }` with its status.
 * @internal
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type * as Http from "node:http"
import type * as Event from "../Event.js"
import type * as EventBus from "../EventBus.js"
import type * as SseRoute from "../SseRoute.js"
import { formatId } from "./event.js"
import { isQueued, rawRequest, rawResponse } from "./nodeEdge.js"
import { RateLimiter } from "./rateLimit.js"
import { errorJson, type Granted } from "./request.js"

/** What the publish handler needs from the route. @internal */
export interface PublishContext {
  readonly bus: EventBus.EventBus["Type"]
  readonly config: SseRoute.ResolvedOptions
  readonly draining: () => boolean
  /** Runs the authorization hook: a refusal response, or the topic predicate (`undefined`: all). */
  readonly authorize: (
    request: HttpServerRequest.HttpServerRequest,
    topics: ReadonlyArray<string>,
    action: "subscribe" | "publish"
  ) => Effect.Effect<Granted>
}

/** A publish body as read, before it becomes an event: `data` is the JSON value given. @internal */
export interface PublishBody {
  readonly topic: string
  readonly type: string | undefined
  readonly data: unknown
}

/**
 * A check of the publish body that replaces the default reading of `data` (set per request, by a
 * typed `SseApi` group): the event to append, or a refusal (code and message) that appends nothing.
 * @internal
 */
export class PublishCheck extends Context.Tag("sluice/internal/PublishCheck")<
  PublishCheck,
  (body: PublishBody) => Either.Either<Event.EventInput, { readonly error: string; readonly message: string }>
>() {}

const tooLarge = (limit: number) =>
  errorJson(413, "payload_too_large", `body is larger than ${limit} bytes`, { connection: "close" })

/** @internal */
export const makePublish = (ctx: PublishContext) => {
  const { bus, config } = ctx
  const rate = config.publishRate
  const limiter = rate === undefined ? undefined : new RateLimiter(rate.burst, rate.refillMillis)

  const limited = (request: HttpServerRequest.HttpServerRequest) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      if (limiter === undefined || rate === undefined) return undefined
      const wait = limiter.take(rate.key(request), now)
      if (wait === 0) return undefined
      const seconds = String(Math.ceil(wait / 1000))
      return errorJson(429, "too_many_requests", `publishing too fast; retry in ${seconds} s`, { "retry-after": seconds })
    })

  const readBody = (request: HttpServerRequest.HttpServerRequest) =>
    readLimited(request, config.maxBodyBytes).pipe(
      Effect.timeoutTo({
        duration: Duration.millis(config.bodyTimeout),
        onSuccess: (body): BodyResult => body,
        onTimeout: (): BodyResult => "timeout"
      })
    )

  return Effect.gen(function*() {
    if (!config.publish) {
      return errorJson(405, "method_not_allowed", "publishing over HTTP is not enabled", { allow: "GET" })
    }
    if (ctx.draining()) {
      return errorJson(503, "shutting_down", "the server is shutting down; publish to another node", {
        connection: "close",
        "retry-after": "1"
      })
    }
    const request = yield* HttpServerRequest.HttpServerRequest
    const res = rawResponse(request)
    if (res !== undefined && isQueued(res)) {
      // Its answer waits behind the request before it (an open stream, maybe forever): appending
      // now would leave the publisher unable to know, and its retry would publish twice.
      return errorJson(400, "pipelined", "a publish cannot wait behind another request on one connection: nothing was appended", {
        connection: "close"
      })
    }
    const contentType = request.headers["content-type"] ?? ""
    if (!/^application\/json\s*(;|$)/i.test(contentType)) {
      return errorJson(415, "unsupported_media_type", "content type must be application/json")
    }
    const declared = Number(request.headers["content-length"] ?? "0")
    if (Number.isFinite(declared) && declared > config.maxBodyBytes) return tooLarge(config.maxBodyBytes)
    const refused = yield* limited(request)
    if (refused !== undefined) return refused
    const body = yield* readBody(request)
    if (body === "too-large") return tooLarge(config.maxBodyBytes)
    if (body === "timeout") {
      return errorJson(408, "request_timeout", `the body did not arrive within ${config.bodyTimeout} ms`, {
        connection: "close"
      })
    }
    if (body === "failed") return errorJson(400, "bad_request", "the request body could not be read")
    const parsed = parseBody(body)
    if (typeof parsed === "string") return errorJson(400, parsed === INVALID_JSON ? "invalid_json" : "invalid_event", parsed)
    const checked = Option.match(yield* Effect.serviceOption(PublishCheck), {
      onNone: () => Either.right(toInput(parsed)),
      onSome: (check) => check(parsed)
    })
    if (Either.isLeft(checked)) return errorJson(400, checked.left.error, checked.left.message)
    const input = checked.right
    const access = yield* ctx.authorize(request, [input.topic], "publish")
    if (!("allows" in access)) return access
    if (access.allows !== undefined && !access.allows(input.topic)) {
      return errorJson(403, "forbidden", `not allowed to publish on topic ${input.topic}`)
    }
    const key = request.headers["idempotency-key"]
    return yield* append(bus, key === undefined ? input : { ...input, idempotencyKey: key })
  })
}

const append = (bus: EventBus.EventBus["Type"], input: Event.EventInput) =>
  Effect.map(Effect.either(bus.publish(input)), (published) => {
    if (Either.isRight(published)) {
      return HttpServerResponse.unsafeJson({ id: formatId(published.right.id) }, { status: 201 })
    }
    const error = published.left
    if (error.reason === "Unavailable") return errorJson(503, "unavailable", "the event log is unavailable")
    if (error.reason === "TooLarge") return errorJson(413, "payload_too_large", error.message)
    if (error.reason === "InvalidIdempotencyKey") return errorJson(400, "invalid_idempotency_key", error.message)
    return errorJson(400, "invalid_event", error.message)
  })

type BodyResult = string | "too-large" | "failed" | "timeout"

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

const INVALID_JSON = "body is not valid JSON"

/** The body's fields, or what is wrong with it. */
const parseBody = (body: string): PublishBody | string => {
  let value: unknown
  try {
    value = JSON.parse(body)
  } catch {
    return INVALID_JSON
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "body must be a JSON object {topic, type?, data}"
  }
  const record = value as Record<string, unknown>
  if (typeof record.topic !== "string") return "topic must be a string"
  if (record.type !== undefined && typeof record.type !== "string") return "type must be a string"
  if (!("data" in record) || record.data === undefined) return "data is required"
  return { topic: record.topic, type: record.type as string | undefined, data: record.data }
}

/** The untyped reading: a string `data` is stored as is, any other JSON value as its JSON text. */
const toInput = ({ data, topic, type }: PublishBody): Event.EventInput => {
  const text = typeof data === "string" ? data : JSON.stringify(data)
  return type === undefined ? { topic, data: text } : { topic, type, data: text }
}
