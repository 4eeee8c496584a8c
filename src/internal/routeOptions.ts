/**
 * The route's options, decoded in one place: defaults, bounds, and the environment variables that
 * override them. A bad value is a `ConfigError` naming the option (or the variable it came from),
 * never a defect and never silently clamped.
 * @internal
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as SseRoute from "../SseRoute.js"
import { durationVar, integerVar, overlay, pathVar, positive } from "./config.js"
import { resolveCors } from "./cors.js"

const RETRY_FLOOR = 500

type Check<A> = Either.Either<A, ConfigError.ConfigError>

const invalid = (name: string, message: string): Check<never> =>
  Either.left(ConfigError.InvalidData(["SseRoute", name], `SseRoute option ${name} ${message}`))

const decodeMillis = (input: Duration.DurationInput): number | undefined => {
  const decoded = Duration.decodeUnknown(input)
  return Option.isSome(decoded) ? Duration.toMillis(decoded.value) : undefined
}

/** A duration option in milliseconds, at least `min` (and finite unless `infinite` is allowed). */
const millis = (
  name: string,
  input: Duration.DurationInput | undefined,
  fallback: number,
  min: number,
  infinite = false
): Check<number> => {
  if (input === undefined) return Either.right(fallback)
  const ms = decodeMillis(input)
  if (ms === undefined) return invalid(name, `is not a duration: ${String(input)}`)
  if (ms === Infinity && infinite) return Either.right(ms)
  if (!Number.isFinite(ms) || ms < min) return invalid(name, `must be a duration of at least ${min} ms, got ${String(input)}`)
  return Either.right(ms)
}

const count = (name: string, value: number | undefined, fallback: number | undefined): Check<number | undefined> => {
  if (value === undefined) return Either.right(fallback)
  if (!positive(value)) return invalid(name, `must be a positive integer, got ${value}`)
  return Either.right(value)
}

const path = (name: string, value: string | false | undefined, fallback: string): Check<string | undefined> => {
  if (value === false) return Either.right(undefined)
  const p = value ?? fallback
  if (!p.startsWith("/")) return invalid(name, `must start with "/", got ${JSON.stringify(p)}`)
  return Either.right(p)
}

const remoteAddress = (request: HttpServerRequest.HttpServerRequest): string =>
  Option.getOrElse(request.remoteAddress, () => "unknown")

const rate = (input: SseRoute.PublishRate | undefined): Check<SseRoute.ResolvedOptions["publishRate"]> => {
  if (input === undefined) return Either.right(undefined)
  return Either.flatMap(count("publishRate.limit", input.limit, 1), (limit) =>
    Either.map(millis("publishRate.per", input.per, 1_000, 1), (per) => ({
      burst: limit!,
      refillMillis: per / limit!,
      key: input.key ?? remoteAddress
    })))
}

/** Every option with its default applied, or the first one that is wrong. @internal */
export const resolve = (options: SseRoute.Options | undefined): Check<SseRoute.ResolvedOptions> =>
  Either.gen(function*() {
    const o = options ?? {}
    const retryMin = yield* millis("retryMin", o.retryMin, 1_000, RETRY_FLOOR)
    const retryMax = yield* millis("retryMax", o.retryMax, Math.max(retryMin, 5_000), retryMin)
    const maxLifetime = yield* millis("maxLifetime", o.maxLifetime, 10 * 60_000, 1, true)
    return {
      path: (yield* path("path", o.path, "/events"))!,
      statsPath: yield* path("statsPath", o.statsPath, "/stats"),
      metricsPath: yield* path("metricsPath", o.metricsPath, "/metrics"),
      heartbeat: yield* millis("heartbeat", o.heartbeat, 15_000, 10),
      retryMin,
      retryMax,
      writeDeadline: yield* millis("writeDeadline", o.writeDeadline, 10_000, 10),
      maxLifetime: maxLifetime === Infinity ? undefined : maxLifetime,
      drainTimeout: yield* millis("drainTimeout", o.drainTimeout, 1_000, 0),
      stallTimeout: yield* millis("stallTimeout", o.stallTimeout, 30_000, 1),
      maxEvents: yield* count("maxEvents", o.maxEvents, undefined),
      maxBytes: yield* count("maxBytes", o.maxBytes, undefined),
      maxReplay: yield* count("maxReplay", o.maxReplay, undefined),
      maxTopics: (yield* count("maxTopics", o.maxTopics, 32))!,
      publish: o.publish ?? false,
      maxBodyBytes: (yield* count("maxBodyBytes", o.maxBodyBytes, 64 * 1024))!,
      bodyTimeout: yield* millis("bodyTimeout", o.bodyTimeout, 10_000, 1),
      publishRate: yield* rate(o.publishRate),
      keepAlive: yield* millis("keepAlive", o.keepAlive, 30_000, 1_000),
      authorize: o.authorize,
      cors: yield* cors(o.cors),
      chunked: o.chunked ?? false
    }
  })

/**
 * The route's options from `SLUICE_SSE_*` environment variables, over `defaults`. Each variable
 * is checked as it is read, so a bad one fails with a `ConfigError` that names it.
 * @internal
 */
export const fromEnv = (defaults?: SseRoute.Options): Config.Config<SseRoute.Options> =>
  Config.all({
    path: pathVar("SLUICE_SSE_PATH"),
    statsPath: pathVar("SLUICE_SSE_STATS_PATH", true),
    metricsPath: pathVar("SLUICE_SSE_METRICS_PATH", true),
    heartbeat: durationVar("SLUICE_SSE_HEARTBEAT", 10),
    retryMin: durationVar("SLUICE_SSE_RETRY_MIN", RETRY_FLOOR),
    retryMax: durationVar("SLUICE_SSE_RETRY_MAX", RETRY_FLOOR),
    writeDeadline: durationVar("SLUICE_SSE_WRITE_DEADLINE", 10),
    maxLifetime: durationVar("SLUICE_SSE_MAX_LIFETIME"),
    drainTimeout: durationVar("SLUICE_SSE_DRAIN_TIMEOUT", 0),
    stallTimeout: durationVar("SLUICE_SSE_STALL_TIMEOUT"),
    bodyTimeout: durationVar("SLUICE_SSE_BODY_TIMEOUT"),
    maxEvents: integerVar("SLUICE_SSE_MAX_EVENTS"),
    maxBytes: integerVar("SLUICE_SSE_MAX_BYTES"),
    maxReplay: integerVar("SLUICE_SSE_MAX_REPLAY"),
    maxTopics: integerVar("SLUICE_SSE_MAX_TOPICS"),
    maxBodyBytes: integerVar("SLUICE_SSE_MAX_BODY_BYTES"),
    publish: Config.option(Config.boolean("SLUICE_SSE_PUBLISH")),
    chunked: Config.option(Config.boolean("SLUICE_SSE_CHUNKED"))
  }).pipe(
    Config.zip(corsFromEnv),
    Config.map(([env, fromCors]) => {
      const out = overlay(defaults, env)
      const origins = Option.orElse(fromCors.origins, () => Option.fromNullable(defaults?.cors?.origins))
      if (Option.isNone(origins)) return out
      const credentials = Option.getOrElse(fromCors.credentials, () => defaults?.cors?.credentials)
      return { ...out, cors: { ...defaults?.cors, origins: origins.value, credentials } }
    })
  )

/** `SLUICE_SSE_CORS_ORIGINS` (comma-separated, or `*`) and `SLUICE_SSE_CORS_CREDENTIALS`. */
const corsFromEnv = Config.all({
  origins: Config.option(Config.map(
    Config.array(Config.string(), "SLUICE_SSE_CORS_ORIGINS"),
    (list): ReadonlyArray<string> | "*" => (list.length === 1 && list[0] === "*" ? "*" : list.map((o) => o.trim()))
  )),
  credentials: Config.option(Config.boolean("SLUICE_SSE_CORS_CREDENTIALS"))
})

const cors = (input: SseRoute.Cors | undefined): Check<SseRoute.ResolvedCors | undefined> =>
  Either.try({
    try: () => resolveCors(input),
    catch: (e) => ConfigError.InvalidData(["SseRoute", "cors"], e instanceof Error ? e.message : String(e))
  })
