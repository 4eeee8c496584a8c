/**
 * The HTTP layer: serves each subscription as a Server-Sent-Events stream, mountable in any
 * `@effect/platform` server.
 *
 * One service ({@link SseRoute}) holds the handlers and the connection registry; thin adapters mount
 * them in a classic `HttpRouter` ({@link router}), an `HttpRouter.Tag` such as `HttpRouter.Default` or
 * `HttpApiBuilder.Router` ({@link layerRouter}), or an `HttpLayerRouter` ({@link layerHttpLayerRouter}).
 *
 * On Node (`@effect/platform-node`) live events are written by one central writer straight to every
 * ready socket, coalesced per tick, with no fiber wake per connection; elsewhere the route falls back
 * to a portable body stream. Wire contract: `docs/http.md`.
 *
 * Lifetime: provide the layer so that it is released **before** the HTTP server (build the server
 * layer first), so that closing the program ends every stream cleanly and the server closes at once.
 *
 * @since 0.1.0
 */
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpRouter from "@effect/platform/HttpRouter"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as EventBus from "./EventBus.js"
import * as eventBusInternal from "./internal/eventBus.js"
import * as routeOptions from "./internal/routeOptions.js"
import * as internal from "./internal/sseRoute.js"

/**
 * The authorization hook refuses the request: answered `401` with a JSON body (a deliberate stop
 * for a browser `EventSource`, which does not retry a non-200).
 *
 * @since 0.1.0
 * @category errors
 */
export class Unauthorized extends Data.TaggedError("Unauthorized")<{ readonly message: string }> {}

/**
 * The authorization hook forbids the topics: answered `403` with a JSON body.
 *
 * @since 0.1.0
 * @category errors
 */
export class Forbidden extends Data.TaggedError("Forbidden")<{ readonly message: string }> {}

/**
 * What a principal may read (and publish on):
 * - `{ all: true }`: every topic;
 * - `{ topics }`: the topics matching these patterns (`orders/42`, `orders/*`);
 * - `{ allows }`: the topics for which the predicate holds.
 *
 * sluice applies it to every event before buffering and on replay, so a wildcard or a request with
 * no topic can never widen it.
 *
 * @since 0.1.0
 * @category models
 */
export type Access =
  | { readonly all: true }
  | { readonly topics: ReadonlyArray<string> }
  | { readonly allows: (topic: string) => boolean }

/**
 * The authorization hook: runs before anything is registered and answers what the request's
 * principal may read (`subscribe`) or publish on (`publish`). `topics` are the patterns the request
 * asks for (empty on `subscribe`: every topic), for logging or early refusal; what is delivered is
 * decided by the returned {@link Access}, never by them. A subscription whose concrete topic is not
 * allowed, or that can match nothing allowed, gets `403`; a publish on a topic not allowed gets `403`.
 *
 * @since 0.1.0
 * @category models
 */
export type Authorize = (
  request: HttpServerRequest.HttpServerRequest,
  topics: ReadonlyArray<string>,
  action: "subscribe" | "publish"
) => Effect.Effect<Access, Unauthorized | Forbidden>

/**
 * A rate limit on `POST` publishing: a bucket of `limit` publishes per `per`, for each key (by
 * default the client's address). Past it the route answers `429` with `Retry-After`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PublishRate {
  readonly limit: number
  readonly per: Duration.DurationInput
  /** The key a bucket belongs to, e.g. the principal (default: the remote address). */
  readonly key?: ((request: HttpServerRequest.HttpServerRequest) => string) | undefined
}

/**
 * Which other origins may use the events route (`GET` streams, `POST` publishing, and their `OPTIONS`
 * preflight) from a browser. Without it the route is same-origin only: a request whose `Origin` is
 * another origin gets `403` with no CORS headers, and no stream is opened.
 *
 * @since 0.1.0
 * @category models
 */
export interface Cors {
  /**
   * The allowed origins (`https://app.example.com`, scheme, host and port as the browser sends
   * them), a predicate, or `"*"` for any origin (not with `credentials`).
   */
  readonly origins: ReadonlyArray<string> | ((origin: string) => boolean) | "*"
  /**
   * Allow credentials (default false): cookies on an `EventSource` opened with
   * `withCredentials: true`, or on `fetch` with `credentials: "include"`; they then reach the
   * `authorize` hook.
   */
  readonly credentials?: boolean | undefined
  /** How long a browser may cache a preflight's answer (default 10 minutes). */
  readonly maxAge?: Duration.DurationInput | undefined
}

/**
 * {@link Cors} with defaults applied.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResolvedCors {
  /** `undefined`: every origin (`Access-Control-Allow-Origin: *`, never with credentials). */
  readonly allows: ((origin: string) => boolean) | undefined
  readonly credentials: boolean
  readonly maxAgeSeconds: number
}

/**
 * Options of the route. Durations take any `Duration.DurationInput`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Path of the events route (GET stream, POST publish) for the layer adapters (default `/events`). */
  readonly path?: string | undefined
  /** Path of the JSON stats route for the layer adapters (default `/stats`). */
  readonly statsPath?: string | false | undefined
  /** Path of the Prometheus metrics route for the layer adapters (default `/metrics`). */
  readonly metricsPath?: string | false | undefined
  /** Comment sent on a connection that wrote nothing for this long (default 15 s). */
  readonly heartbeat?: Duration.DurationInput | undefined
  /** Lower bound of the per-connection jittered `retry:` (default 1 s, never below 500 ms). */
  readonly retryMin?: Duration.DurationInput | undefined
  /** Upper bound of the jittered `retry:` (default 5 s). */
  readonly retryMax?: Duration.DurationInput | undefined
  /** An ended stream that cannot finish writing within this has its socket destroyed (default 10 s). */
  readonly writeDeadline?: Duration.DurationInput | undefined
  /**
   * Maximum connection lifetime, jittered down by up to 15 %; ends with reason `lifetime` (default
   * 10 minutes). It bounds how long a stopped peer whose kernel still acknowledges is held. `Infinity`
   * turns it off.
   */
  readonly maxLifetime?: Duration.DurationInput | undefined
  /** How long closing the layer waits for streams to end before destroying them (default 1 s). */
  readonly drainTimeout?: Duration.DurationInput | undefined
  /** A connection whose buffer (or socket) does not drain for this long ends as `stalled` (default 30 s). */
  readonly stallTimeout?: Duration.DurationInput | undefined
  /** Per-connection buffer cap in events (default: the bus's, 1,000). */
  readonly maxEvents?: number | undefined
  /** Per-connection buffer cap in bytes (default: the bus's, 1 MiB). */
  readonly maxBytes?: number | undefined
  /** Most events replayed on resume before a `too-far-behind` reset (default: the bus's, 1,000). */
  readonly maxReplay?: number | undefined
  /** Most `topic` parameters per request (default 32). */
  readonly maxTopics?: number | undefined
  /** Enables `POST` publishing on the events path (default false: `405`). */
  readonly publish?: boolean | undefined
  /** Largest accepted `POST` body (default 64 KiB); reading stops at the limit. */
  readonly maxBodyBytes?: number | undefined
  /** A `POST` body that has not fully arrived within this gets `408` (default 10 s). */
  readonly bodyTimeout?: Duration.DurationInput | undefined
  /** Optional rate limit on `POST` publishing, per principal or address. */
  readonly publishRate?: PublishRate | undefined
  /** Idle time before TCP keepalive probes start on a stream's socket (default 30 s). */
  readonly keepAlive?: Duration.DurationInput | undefined
  /** Authorization hook for both routes. */
  readonly authorize?: Authorize | undefined
  /** Other origins allowed to use the events route (default none: same-origin only). */
  readonly cors?: Cors | undefined
  /**
   * Send event streams with HTTP/1.1 chunked transfer encoding (default false). By default, on Node,
   * a stream's body is delimited by the connection's close (`Connection: close`, no chunk framing):
   * every write is the shared frame bytes as they are, which measured about 25 % less server CPU per
   * delivered event. An `EventSource` never reuses a connection while its stream is open, so the
   * only cost is that a connection is not kept alive after its stream ends. The portable (non-Node)
   * path leaves framing to the server.
   */
  readonly chunked?: boolean | undefined
}

/**
 * Options with every default applied (durations in milliseconds).
 *
 * @since 0.1.0
 * @category models
 */
export interface ResolvedOptions {
  readonly path: string
  /** `undefined` when the route is turned off. */
  readonly statsPath: string | undefined
  readonly metricsPath: string | undefined
  readonly heartbeat: number
  readonly retryMin: number
  readonly retryMax: number
  readonly writeDeadline: number
  readonly maxLifetime: number | undefined
  readonly drainTimeout: number
  readonly stallTimeout: number
  readonly maxEvents: number | undefined
  readonly maxBytes: number | undefined
  readonly maxReplay: number | undefined
  readonly maxTopics: number
  readonly publish: boolean
  readonly maxBodyBytes: number
  readonly bodyTimeout: number
  readonly publishRate: {
    readonly burst: number
    readonly refillMillis: number
    readonly key: (request: HttpServerRequest.HttpServerRequest) => string
  } | undefined
  readonly keepAlive: number
  readonly authorize: Authorize | undefined
  readonly cors: ResolvedCors | undefined
  readonly chunked: boolean
}

/**
 * The route service: handlers bound to one bus, plus the registry of open streams.
 *
 * @since 0.1.0
 * @category tags
 */
export class SseRoute extends Context.Tag("sluice/SseRoute")<SseRoute, {
  readonly options: ResolvedOptions
  /** `GET`: the SSE stream (`?topic=…&lastEventId=…`, or the `Last-Event-ID` header). */
  readonly events: Effect.Effect<
    HttpServerResponse.HttpServerResponse,
    never,
    HttpServerRequest.HttpServerRequest | Scope.Scope
  >
  /** `POST`: publish JSON `{ topic, type?, data }`, answered `201 { id }`. */
  readonly publish: Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>
  /** `OPTIONS`: the CORS preflight of the events path (see {@link Cors}). */
  readonly preflight: Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>
  /** `GET`: the bus's stats as JSON. */
  readonly stats: Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>
  /** `GET`: every Effect metric in the Prometheus text format. */
  readonly metrics: Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>
  /** Ends every open stream with `shutdown` and waits (up to `drainTimeout`); new streams end at once. */
  readonly drain: Effect.Effect<void>
  /** Open SSE connections. */
  readonly connections: Effect.Effect<number>
}>() {}

/**
 * Builds the route service over the {@link EventBus.EventBus} in context; closing the scope drains it.
 * An option out of its bounds fails with a `ConfigError` naming it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options?: Options
): Effect.Effect<SseRoute["Type"], ConfigError.ConfigError, EventBus.EventBus | Scope.Scope> =>
  Effect.flatMap(
    Effect.all([EventBus.EventBus, routeOptions.resolve(options)]),
    ([bus, resolved]) =>
      eventBusInternal.hasRawSide(bus)
        ? internal.make(resolved, bus)
        : Effect.fail(ConfigError.InvalidData(
          ["SseRoute"],
          "SseRoute needs the bus EventBus.make / EventBus.layer built: a bus object copied or rebuilt " +
            "around it ({ ...bus }) cannot serve streams; wrap calls to it instead"
        ))
  )

/**
 * The route service as a layer. An option out of its bounds fails the layer with a `ConfigError`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<SseRoute, ConfigError.ConfigError, EventBus.EventBus> =>
  Layer.scoped(SseRoute, make(options))


/**
 * The route service with its options read from a `Config`, e.g. {@link fromEnv}.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<Options>
): Layer.Layer<SseRoute, ConfigError.ConfigError, EventBus.EventBus> =>
  Layer.scoped(SseRoute, Effect.flatMap(Config.unwrap(config), make))

/**
 * The route's options from the environment, over `defaults`. Durations read like `15 seconds`;
 * paths must start with `/` (`off` turns the stats or metrics route off). A bad value fails with a
 * `ConfigError` naming its variable.
 *
 * | Variable | Option |
 * | --- | --- |
 * | `SLUICE_SSE_PATH`, `SLUICE_SSE_STATS_PATH`, `SLUICE_SSE_METRICS_PATH` | `path`, `statsPath`, `metricsPath` |
 * | `SLUICE_SSE_HEARTBEAT`, `SLUICE_SSE_RETRY_MIN`, `SLUICE_SSE_RETRY_MAX` | `heartbeat`, `retryMin`, `retryMax` |
 * | `SLUICE_SSE_WRITE_DEADLINE`, `SLUICE_SSE_MAX_LIFETIME`, `SLUICE_SSE_DRAIN_TIMEOUT` | `writeDeadline`, `maxLifetime`, `drainTimeout` |
 * | `SLUICE_SSE_STALL_TIMEOUT`, `SLUICE_SSE_BODY_TIMEOUT` | `stallTimeout`, `bodyTimeout` |
 * | `SLUICE_SSE_MAX_EVENTS`, `SLUICE_SSE_MAX_BYTES`, `SLUICE_SSE_MAX_REPLAY` | `maxEvents`, `maxBytes`, `maxReplay` |
 * | `SLUICE_SSE_MAX_TOPICS`, `SLUICE_SSE_MAX_BODY_BYTES` | `maxTopics`, `maxBodyBytes` |
 * | `SLUICE_SSE_PUBLISH`, `SLUICE_SSE_CHUNKED` | `publish`, `chunked` (`true` / `false`) |
 * | `SLUICE_SSE_CORS_ORIGINS`, `SLUICE_SSE_CORS_CREDENTIALS` | `cors.origins` (comma-separated, or `*`), `cors.credentials` |
 *
 * @since 0.1.0
 * @category config
 */
export const fromEnv: (defaults?: Options) => Config.Config<Options> = routeOptions.fromEnv

/**
 * A classic `HttpRouter` serving the route at the configured paths (`GET`/`POST` on `path`, `GET`
 * on `statsPath` and `metricsPath` unless they are off, `OPTIONS` on `path` for CORS preflights). Mount it under a prefix with
 * `HttpRouter.mount("/bus", SseRoute.router)`; it needs {@link SseRoute}. Any other path is
 * `RouteNotFound`, so the routes of a router it is concatenated with keep precedence.
 *
 * @since 0.1.0
 * @category routers
 */
export const router: HttpRouter.HttpRouter<HttpServerError.RouteNotFound, SseRoute> = HttpRouter.empty.pipe(
  HttpRouter.all("*", Effect.flatMap(SseRoute, internal.dispatch))
)

/**
 * Adds the routes (at the configured paths) to an `HttpRouter.Tag` router, e.g. `HttpRouter.Default`
 * or `HttpApiBuilder.Router`.
 *
 * @since 0.1.0
 * @category routers
 */
export const layerRouter = <Self, Name extends string, E, R>(
  tag: HttpRouter.HttpRouter.TagClass<Self, Name, E, R>
): Layer.Layer<never, never, SseRoute> =>
  tag.use((r) =>
    Effect.gen(function*() {
      const route = yield* SseRoute
      const { metricsPath, path, statsPath } = route.options
      yield* r.get(path as HttpRouter.PathInput, route.events)
      yield* r.post(path as HttpRouter.PathInput, route.publish)
      yield* r.options(path as HttpRouter.PathInput, route.preflight)
      if (statsPath !== undefined) yield* r.get(statsPath as HttpRouter.PathInput, route.stats)
      if (metricsPath !== undefined) yield* r.get(metricsPath as HttpRouter.PathInput, route.metrics)
    })
  )

/**
 * Adds the routes (at the configured paths) to an `HttpLayerRouter`.
 *
 * @since 0.1.0
 * @category routers
 */
export const layerHttpLayerRouter: Layer.Layer<never, never, HttpLayerRouter.HttpRouter | SseRoute> = HttpLayerRouter
  .use((r) =>
    Effect.gen(function*() {
      const route = yield* SseRoute
      const { metricsPath, path, statsPath } = route.options
      yield* r.add("GET", path as HttpLayerRouter.PathInput, route.events)
      yield* r.add("POST", path as HttpLayerRouter.PathInput, route.publish)
      yield* r.add("OPTIONS", path as HttpLayerRouter.PathInput, route.preflight)
      if (statsPath !== undefined) yield* r.add("GET", statsPath as HttpLayerRouter.PathInput, route.stats)
      if (metricsPath !== undefined) yield* r.add("GET", metricsPath as HttpLayerRouter.PathInput, route.metrics)
    })
  )
