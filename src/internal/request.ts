/**
 * Reading a stream request: its topics, its cursor, and what its principal may read.
 * @internal
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import type * as SseRoute from "../SseRoute.js"
import { compileAccess, refuseSubscription } from "./access.js"
import { validatePattern } from "./event.js"
import { endRaw, isQueued, rawResponse } from "./nodeEdge.js"
import { handOver } from "./nodeTransport.js"

/** @internal */
export const errorJson = (status: number, error: string, message: string, headers?: Record<string, string>) =>
  HttpServerResponse.unsafeJson({ error, message }, { status, ...(headers === undefined ? {} : { headers }) })

/** A stream request that passed validation and authorization. @internal */
export interface StreamRequest {
  readonly topics: ReadonlyArray<string>
  readonly after: string | undefined
  /** The topics the principal may read (`undefined`: every topic). */
  readonly allows: ((topic: string) => boolean) | undefined
}

/** The access the hook grants, or the refusal to answer. @internal */
export type Granted = HttpServerResponse.HttpServerResponse | { readonly allows: ((topic: string) => boolean) | undefined }

/** Runs the authorization hook: `401`/`403`/`500` as a response, or what the principal may read. @internal */
export const authorize = (
  config: SseRoute.ResolvedOptions,
  request: HttpServerRequest.HttpServerRequest,
  topics: ReadonlyArray<string>,
  action: "subscribe" | "publish"
): Effect.Effect<Granted> => {
  const hook = config.authorize
  if (hook === undefined) return Effect.succeed({ allows: undefined })
  return hook(request, topics, action).pipe(
    Effect.map((access): Granted => {
      const allows = compileAccess(access)
      if (typeof allows === "string") return errorJson(500, "internal", "authorization failed")
      const refused = action === "subscribe" ? refuseSubscription(access, allows, topics) : undefined
      return refused === undefined ? { allows } : errorJson(403, "forbidden", refused)
    }),
    Effect.catchAll((e) =>
      Effect.succeed(
        e._tag === "Unauthorized" ? errorJson(401, "unauthorized", e.message) : errorJson(403, "forbidden", e.message)
      )
    ),
    Effect.catchAllDefect(() => Effect.succeed(errorJson(500, "internal", "authorization failed")))
  )
}

/** The request target as a URL, or `undefined` when it does not parse. @internal */
export const parseUrl = (target: string): URL | undefined => {
  try {
    return new URL(target, "http://localhost")
  } catch {
    return undefined
  }
}

/** The topics of a stream request, or its `400`. */
const parseTopics = (
  config: SseRoute.ResolvedOptions,
  url: URL
): ReadonlyArray<string> | HttpServerResponse.HttpServerResponse => {
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

/**
 * Reads a stream request: its topics (`400` when malformed), what its principal may read (`401`,
 * `403`), and its cursor (the `Last-Event-ID` header, else `?lastEventId=`).
 * @internal
 */
export const readStreamRequest = (
  config: SseRoute.ResolvedOptions,
  request: HttpServerRequest.HttpServerRequest
): Effect.Effect<StreamRequest | HttpServerResponse.HttpServerResponse> => {
  const url = parseUrl(request.url)
  if (url === undefined) return Effect.succeed(errorJson(400, "bad_request", "the request target is not a valid URL"))
  const topics = parseTopics(config, url)
  if (!Array.isArray(topics)) return Effect.succeed(topics as HttpServerResponse.HttpServerResponse)
  return Effect.map(authorize(config, request, topics, "subscribe"), (granted) => {
    if (!("allows" in granted)) return granted
    const header = request.headers["last-event-id"]
    const after = header !== undefined ? header : url.searchParams.get("lastEventId") ?? undefined
    const allows = granted.allows
    // A predicate that throws denies (a resume's scan and the fan-out run it on every event).
    const safe = allows === undefined ? undefined : (topic: string) => {
      try {
        return allows(topic) === true
      } catch {
        return false
      }
    }
    return { topics, after, allows: safe }
  })
}

/**
 * The route's last word on a response: an event stream's hand-over response opens its session
 * (head written here, then the central writer's; the platform skips it). A response whose Node
 * response is queued behind another on a pipelined connection (or a `HEAD`) is written raw: the
 * platform would wait for its `'finish'`, which never comes if the connection closes first. Other
 * responses pass through.
 * @internal
 */
export const respond = (
  request: HttpServerRequest.HttpServerRequest,
  response: HttpServerResponse.HttpServerResponse
): HttpServerResponse.HttpServerResponse => {
  if (handOver(response)) return response
  const res = rawResponse(request)
  if (res === undefined || (!isQueued(res) && request.method !== "HEAD")) return response
  const body = response.body
  const bytes = body._tag === "Uint8Array" ? body.body : new Uint8Array(0)
  const headers: Record<string, string> = { ...response.headers }
  if (body._tag === "Uint8Array") headers["content-type"] = body.contentType
  endRaw(res, response.status, headers, bytes)
  return response
}
