/**
 * Cross-origin requests: which origins may use the events route, the CORS headers of their
 * responses, and the answer to a preflight. Pure functions over the request's headers; the route
 * wraps its handlers with {@link withCors}.
 *
 * A request without `Origin` (curl, a server, a same-origin `GET`) and a same-origin one pass with no
 * CORS headers. Same origin: `Sec-Fetch-Site: same-origin` (set by the browser, which a page cannot
 * forge), or an `Origin` whose host is the request's `Host` (or `X-Forwarded-Host`). Any other origin
 * passes only if the options allow it, and gets `Access-Control-Allow-Origin` (and
 * `-Credentials`); a refused one gets a JSON `403` with no CORS headers, before anything is opened.
 * @internal
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as Headers from "@effect/platform/Headers"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as SseRoute from "../SseRoute.js"
import { errorJson } from "./request.js"

/** What a preflight allows besides the safelisted headers: resume cursors and credentials. */
const ALLOW_HEADERS = "Last-Event-ID, Authorization, Content-Type"
const ALLOW_METHODS = "GET, POST, HEAD"

type ResolvedCors = SseRoute.ResolvedCors

/** @internal */
export const resolveCors = (cors: SseRoute.Cors | undefined): ResolvedCors | undefined => {
  if (cors === undefined) return undefined
  const credentials = cors.credentials ?? false
  const origins = cors.origins
  if (origins === "*" && credentials) {
    throw new RangeError(`SseRoute option cors.credentials cannot be used with cors.origins "*": list the origins`)
  }
  const maxAge = cors.maxAge === undefined ? 600 : Duration.toSeconds(Duration.decode(cors.maxAge))
  return {
    allows: origins === "*" ? undefined : typeof origins === "function" ? origins : listed(origins),
    credentials,
    maxAgeSeconds: Math.max(0, Math.floor(maxAge))
  }
}

const listed = (origins: ReadonlyArray<string>): (origin: string) => boolean => {
  const set = new Set(origins.map((o) => o.toLowerCase().replace(/\/+$/, "")))
  return (origin) => set.has(origin.toLowerCase())
}

const hostOf = (origin: string): string | undefined => {
  try {
    return new URL(origin).host.toLowerCase()
  } catch {
    return undefined
  }
}

/** Whether the request comes from a page of the same origin as the route. @internal */
export const isSameOrigin = (headers: Headers.Headers, origin: string): boolean => {
  if (headers["sec-fetch-site"] === "same-origin") return true
  const host = hostOf(origin)
  if (host === undefined) return false
  return host === headers["host"]?.toLowerCase() || host === headers["x-forwarded-host"]?.toLowerCase()
}

/**
 * The CORS verdict on a request: `undefined` when no CORS headers are due (no `Origin`, or the same
 * origin), the headers to add for an allowed origin, or `"refused"`.
 * @internal
 */
export const originVerdict = (
  cors: ResolvedCors | undefined,
  headers: Headers.Headers
): Record<string, string> | "refused" | undefined => {
  const origin = headers["origin"]
  if (origin === undefined || isSameOrigin(headers, origin)) return undefined
  if (cors === undefined) return "refused"
  if (cors.allows === undefined) return { "access-control-allow-origin": "*" }
  if (!cors.allows(origin)) return "refused"
  return cors.credentials
    ? { "access-control-allow-origin": origin, "access-control-allow-credentials": "true", vary: "Origin" }
    : { "access-control-allow-origin": origin, vary: "Origin" }
}

const refusal = (origin: string | undefined) =>
  errorJson(403, "origin_not_allowed", `origin ${JSON.stringify(origin ?? "")} may not use this route`)

/**
 * Runs `handler` for a request whose origin may use the route, adding the CORS headers its
 * response needs; answers `403 origin_not_allowed` for any other, without running it.
 * @internal
 */
export const withCors = <E, R>(
  cors: ResolvedCors | undefined,
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const verdict = originVerdict(cors, request.headers)
    if (verdict === undefined) return handler
    if (verdict === "refused") return Effect.succeed(refusal(request.headers["origin"]))
    return Effect.map(handler, HttpServerResponse.setHeaders(verdict))
  })

/**
 * `OPTIONS` on the events path: `204` with the allowed methods and headers (`Last-Event-ID`,
 * `Authorization`, `Content-Type`) for an allowed or same origin, `403` for any other.
 * @internal
 */
export const preflight = (
  cors: ResolvedCors | undefined
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest> =>
  Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
    const verdict = originVerdict(cors, request.headers)
    if (verdict === "refused") return refusal(request.headers["origin"])
    return HttpServerResponse.empty({
      status: 204,
      headers: {
        ...verdict,
        "access-control-allow-methods": ALLOW_METHODS,
        "access-control-allow-headers": ALLOW_HEADERS,
        "access-control-max-age": String(cors?.maxAgeSeconds ?? 600)
      }
    })
  })
