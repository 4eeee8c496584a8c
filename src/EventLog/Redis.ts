/**
 * The Redis Streams backend of the {@link EventLog.EventLog}: one durable log shared by every node
 * behind a load balancer, so a client resumes on any node, across restarts.
 *
 * A deep import (`sluice/EventLog/Redis`), so memory-only programs never load a Redis client.
 * Layout, scripts, retention, epochs and the settings Redis needs are in `docs/backends.md`.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as EventLog from "../EventLog.js"
import * as internal from "../internal/redisLog.js"

/**
 * Options of the Redis log.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisOptions {
  /** `redis://[[user]:password@]host[:port][/db]` or `rediss://…` (default `redis://127.0.0.1:6379`). */
  readonly url?: string | undefined
  /**
   * Names the log: every key is `{<prefix>}:…`, one hash tag, so the scripts run on one cluster
   * slot. 1-64 characters of `A-Z a-z 0-9 . _ : / -` (default `sluice`).
   */
  readonly prefix?: string | undefined
  /** Retention in events: `XADD … MAXLEN ~` trims whole stream nodes beyond it (default 10,000). */
  readonly maxEvents?: number | undefined
  /** Optional retention by age: older events are trimmed on append, an idle stream expires. */
  readonly maxAge?: Duration.DurationInput | undefined
  /** How long an idempotency key is remembered (default 5 minutes). */
  readonly idempotencyWindow?: Duration.DurationInput | undefined
  /** Longest wait for one command's reply before it fails as `Unavailable` (default 5 s). */
  readonly commandTimeout?: Duration.DurationInput | undefined
  /** Longest wait for a connection (default 5 s). */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** How long the tail reader's `XREAD BLOCK` waits before it checks the epoch again (default 2 s). */
  readonly blockTimeout?: Duration.DurationInput | undefined
}

/**
 * Connects and builds the log for the scope (failing with `InvalidOption` for a bad option). When
 * Redis cannot be reached the log starts anyway: its commands fail with `Unavailable` until the
 * connection, retried in the background, succeeds. The command connection and the tail reader's
 * dedicated connection close with the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: RedisOptions) => Effect.Effect<EventLog.EventLog["Type"], EventLog.EventLogError, Scope.Scope> =
  internal.make

/**
 * The Redis log as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: RedisOptions): Layer.Layer<EventLog.EventLog, EventLog.EventLogError> =>
  Layer.scoped(EventLog.EventLog, make(options))

/**
 * The Redis log configured from `Config`, e.g. `{ url: Config.string("SLUICE_REDIS_URL") }`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<RedisOptions>
): Layer.Layer<EventLog.EventLog, EventLog.EventLogError | ConfigError.ConfigError> =>
  Layer.scoped(EventLog.EventLog, Effect.flatMap(Config.unwrap(config), make))
