/**
 * The ordered event log: the history that subscribers resume from.
 *
 * A backend implements the {@link EventLog} contract and must pass the conformance suite exported
 * from `test/EventLogSuite.ts`. The memory backend ({@link layerMemory}) is the embedded default.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type * as Event from "./Event.js"
import * as config from "./internal/config.js"
import * as internal from "./internal/eventLog.js"
import { EventLogError } from "./internal/errors.js"

export {
  /**
   * A failure of the log backend. `Expired`: the requested range is older than retention.
   * `Unavailable`: the backend cannot be reached or answered garbage. `InvalidOption`: the backend
   * was configured wrongly (it names the option). `InvalidInput`: an append's input is invalid
   * (e.g. a bad idempotency key); nothing of the batch was appended.
   *
   * @since 0.1.0
   * @category errors
   */
  EventLogError
}

/**
 * Options of one `read`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadOptions {
  /** Stop after this many matching events (at least 1). */
  readonly limit: number
  /** Do not read past this sequence number (inclusive); defaults to the head. */
  readonly upTo?: number | undefined
  /** Only events for which this returns true count and are returned. */
  readonly filter?: ((event: Event.Event) => boolean) | undefined
}

/**
 * One page of a read. `cursor` is the sequence number the scan reached: pass it as the next
 * `after` to continue. The range is exhausted once `cursor` equals the `upTo` bound (or the head).
 *
 * @since 0.1.0
 * @category models
 */
export interface ReadPage {
  readonly events: ReadonlyArray<Event.Event>
  readonly cursor: number
}

/**
 * The backend contract. Guarantees every backend must keep:
 *
 * - `append` assigns consecutive sequence numbers, starting at `head.seq + 1`, in input order, and
 *   is atomic: a reader sees all of a batch or none of it.
 * - `read(after, …)` returns events with `seq > after` in strictly increasing order, never skipping
 *   a retained event that matches; it fails with `Expired` when `after + 1` is older than
 *   `earliest` (the events the caller needs were trimmed), never silently starting later.
 * - `follow(listener)` returns the head at registration and then calls `listener` with every batch
 *   appended after that head, exactly once, in log order, with no gap.
 * - `epoch` changes whenever the history is lost (a new in-memory log, a flushed store); sequence
 *   numbers restart with it. A follower that sees the epoch change (or that cannot continue without
 *   a gap) calls its `onReset` with the new head before any later batch.
 * - An input with an `idempotencyKey` already appended within the backend's idempotency window
 *   (default 5 minutes) is not appended again: `append` returns the first event in its place.
 *
 * @since 0.1.0
 * @category tags
 */
export class EventLog extends Context.Tag("sluice/EventLog")<EventLog, {
  /** The current epoch of the log. */
  readonly epoch: Effect.Effect<string, EventLogError>
  /** The id of the newest event (`seq` 0 when nothing was ever appended). */
  readonly head: Effect.Effect<Event.EventId, EventLogError>
  /** The sequence number of the oldest retained event (`head.seq + 1` when empty). */
  readonly earliest: Effect.Effect<number, EventLogError>
  /** Appends a batch of valid inputs and returns the stored events. */
  readonly append: (inputs: ReadonlyArray<Event.EventInput>) => Effect.Effect<ReadonlyArray<Event.Event>, EventLogError>
  /** Reads events after a sequence number, in order, in bounded pages. */
  readonly read: (after: number, options: ReadOptions) => Effect.Effect<ReadPage, EventLogError>
  /**
   * Follows appends in log order for the lifetime of the scope; returns the head it starts after.
   * `onReset` is called when the log lost continuity (a new epoch, or events trimmed before this
   * follower read them): later batches continue after the head it is given.
   */
  readonly follow: (
    listener: (events: ReadonlyArray<Event.Event>) => void,
    onReset?: (head: Event.EventId) => void
  ) => Effect.Effect<Event.EventId, EventLogError, Scope.Scope>
  /**
   * `read` hands out the very event objects the log retains (the memory log): a replay page then
   * holds no memory of its own, and is not counted against the bus's replay budget.
   */
  readonly sharesEvents?: boolean | undefined
}>() {}

/**
 * Options of the memory backend.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryOptions {
  /** Most events retained (default 10,000). */
  readonly maxEvents?: number | undefined
  /** Most bytes retained, counting each event's data, its SSE frame, topic and type plus 64 bytes (default 64 MiB). */
  readonly maxBytes?: number | undefined
  /** A fixed epoch (tests); by default a fresh random one per instance. */
  readonly epoch?: string | undefined
  /** How long an idempotency key is remembered (default 5 minutes). */
  readonly idempotencyWindow?: Duration.DurationInput | undefined
}

/**
 * Builds a memory log: a ring bounded by event count and by bytes, with a fresh random epoch.
 * Its history dies with the process, so a restart is an epoch change for resuming clients.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: (options?: MemoryOptions) => Effect.Effect<EventLog["Type"], ConfigError.ConfigError> =
  internal.makeMemory

/**
 * The memory backend as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options?: MemoryOptions): Layer.Layer<EventLog, ConfigError.ConfigError> =>
  Layer.effect(EventLog, makeMemory(options))

/**
 * The memory backend configured from `Config` (e.g. `SLUICE_LOG_MAX_EVENTS`, `SLUICE_LOG_MAX_BYTES`
 * with `Config.withDefault`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemoryConfig = (
  config: Config.Config.Wrap<MemoryOptions>
): Layer.Layer<EventLog, ConfigError.ConfigError> => Layer.effect(EventLog, Effect.flatMap(Config.unwrap(config), makeMemory))

/**
 * The memory backend's options from the environment, over `defaults`: `SLUICE_LOG_MAX_EVENTS` and
 * `SLUICE_LOG_MAX_BYTES` (positive integers). A bad value fails with a `ConfigError` naming its
 * variable.
 *
 * @since 0.1.0
 * @category config
 */
export const memoryFromEnv = (defaults?: MemoryOptions): Config.Config<MemoryOptions> =>
  Config.all({
    maxEvents: config.integerVar("SLUICE_LOG_MAX_EVENTS"),
    maxBytes: config.integerVar("SLUICE_LOG_MAX_BYTES")
  }).pipe(Config.map((env) => config.overlay(defaults, env)))
