/**
 * The route's options: defaults, bounds, and the environment variables that override them.
 * @internal
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import type * as SseRoute from "../SseRoute.js"
import { resolveCors } from "./cors.js"

const RETRY_FLOOR = 500

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
  const maxLifetime = millis(options?.maxLifetime, 10 * 60_000)
  return {
    path: options?.path ?? "/events",
    statsPath: options?.statsPath ?? "/stats",
    metricsPath: options?.metricsPath ?? "/metrics",
    heartbeat: Math.max(10, millis(options?.heartbeat, 15_000)),
    retryMin,
    retryMax,
    writeDeadline: Math.max(10, millis(options?.writeDeadline, 10_000)),
    maxLifetime: maxLifetime > 0 && Number.isFinite(maxLifetime) ? maxLifetime : undefined,
    drainTimeout: Math.max(0, millis(options?.drainTimeout, 1_000)),
    stallTimeout: positiveMillis("stallTimeout", millis(options?.stallTimeout, 30_000)),
    maxEvents: positiveOrUnset("maxEvents", options?.maxEvents),
    maxBytes: positiveOrUnset("maxBytes", options?.maxBytes),
    maxReplay: positiveOrUnset("maxReplay", options?.maxReplay),
    maxTopics: options?.maxTopics ?? 32,
    publish: options?.publish ?? false,
    maxBodyBytes: options?.maxBodyBytes ?? 64 * 1024,
    bodyTimeout: positiveMillis("bodyTimeout", millis(options?.bodyTimeout, 10_000)),
    publishRate: resolveRate(options?.publishRate),
    keepAlive: Math.max(1_000, millis(options?.keepAlive, 30_000)),
    authorize: options?.authorize,
    cors: resolveCors(options?.cors),
    chunked: options?.chunked ?? false
  }
}

const remoteAddress = (request: HttpServerRequest.HttpServerRequest): string =>
  Option.getOrElse(request.remoteAddress, () => "unknown")

const resolveRate = (rate: SseRoute.PublishRate | undefined): SseRoute.ResolvedOptions["publishRate"] => {
  if (rate === undefined) return undefined
  const limit = positiveOrUnset("publishRate.limit", rate.limit)!
  const per = positiveMillis("publishRate.per", millis(rate.per, 1_000))
  return { burst: Math.floor(limit), refillMillis: per / limit, key: rate.key ?? remoteAddress }
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
    bodyTimeout: duration("SLUICE_SSE_BODY_TIMEOUT"),
    chunked: Config.option(Config.boolean("SLUICE_SSE_CHUNKED"))
  }).pipe(
    Config.zip(corsFromEnv),
    Config.map(([env, cors]) => {
      const out: Record<string, unknown> = { ...base }
      for (const [key, value] of Object.entries(env) as Array<[string, Option.Option<unknown>]>) {
        if (Option.isSome(value)) out[key] = value.value
      }
      const origins = Option.orElse(cors.origins, () => Option.fromNullable(base?.cors?.origins))
      if (Option.isSome(origins)) {
        const credentials = Option.getOrElse(cors.credentials, () => base?.cors?.credentials)
        out["cors"] = { ...base?.cors, origins: origins.value, credentials }
      }
      return out as SseRoute.Options
    })
  )
}

/** `SLUICE_SSE_CORS_ORIGINS` (comma-separated, or `*`) and `SLUICE_SSE_CORS_CREDENTIALS`. */
const corsFromEnv = Config.all({
  origins: Config.option(Config.map(
    Config.array(Config.string(), "SLUICE_SSE_CORS_ORIGINS"),
    (list): ReadonlyArray<string> | "*" => (list.length === 1 && list[0] === "*" ? "*" : list.map((o) => o.trim()))
  )),
  credentials: Config.option(Config.boolean("SLUICE_SSE_CORS_CREDENTIALS"))
})
