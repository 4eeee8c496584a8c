/**
 * The route's wiring: its lifecycle (the central writer on the route's clock, drain, shutdown), the
 * stream handler, the publish handler, stats and metrics.
 * @internal
 */
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as EventBus from "../EventBus.js"
import type * as SseRoute from "../SseRoute.js"
import { preflight, withCors } from "./cors.js"
import * as Lifecycle from "./lifecycle.js"
import { closeWhenAnswered, rawRequest } from "./nodeEdge.js"
import { renderAll } from "./prometheus.js"
import { makePublish } from "./publishRoute.js"
import { authorize, parseUrl, respond } from "./request.js"
import { answerLate, makeEvents } from "./streamRoute.js"

/** @internal */
export const make = (
  config: SseRoute.ResolvedOptions,
  bus: EventBus.EventBus["Type"]
): Effect.Effect<SseRoute.SseRoute["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const lifecycle = yield* Lifecycle.make(config, answerLate(config))
    const { draining, servers, writer } = lifecycle

    // Every handler remembers the Node server it runs on (for shutdown) and writes a response that
    // is queued behind another on a pipelined connection straight to Node.
    const raw = <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
        const req = rawRequest(request)
        servers.track(req)
        closeWhenAnswered(req, request)
        return Effect.map(handler, (response) => respond(request, response))
      })

    const publish = makePublish({
      bus,
      config,
      draining,
      authorize: (request, topics, action) => authorize(config, request, topics, action)
    })

    const stats = Effect.map(bus.stats, (s) =>
      HttpServerResponse.unsafeJson(
        { ...s, sse: { connections: writer.sessions.size, draining: draining() } },
        { headers: { "cache-control": "no-store" } }
      ))

    // Rendering brings the gauges and counters of every open bus up to date first.
    const metrics = Effect.map(renderAll, (text) =>
      HttpServerResponse.text(text, {
        contentType: "text/plain; version=0.0.4; charset=utf-8",
        headers: { "cache-control": "no-store" }
      }))

    const service: SseRoute.SseRoute["Type"] = {
      options: config,
      // A request from an origin the route does not allow gets 403 before anything runs.
      events: raw(withCors(config.cors, makeEvents(config, bus, lifecycle))),
      publish: raw(withCors(config.cors, publish)),
      preflight: raw(preflight(config.cors)),
      stats: raw(stats),
      metrics: raw(metrics),
      drain: lifecycle.drain,
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
    const pathname = parseUrl(request.url)?.pathname
    const get = request.method === "GET" || request.method === "HEAD"
    if (pathname === path && get) return route.events
    if (pathname === path && request.method === "POST") return route.publish
    if (pathname === path && request.method === "OPTIONS") return route.preflight
    if (pathname === statsPath && get) return route.stats
    if (pathname === metricsPath && get) return route.metrics
    return Effect.fail(new HttpServerError.RouteNotFound({ request }))
  })
