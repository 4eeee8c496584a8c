/**
 * The event bus: publish appends to the {@link EventLog.EventLog}; every appended event fans out,
 * in log order, to each matching subscriber's own bounded buffer.
 *
 * A subscriber that falls behind is ended, never silently shorted: when its buffer is full (in
 * events or bytes) it ends with reason `overflow` after what it holds has been delivered, and it
 * resumes from the log with its last id. The publisher never waits for a subscriber.
 *
 * @since 0.1.0
 */
import type * as Chunk from "effect/Chunk"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as Event from "./Event.js"
import * as EventLog from "./EventLog.js"
import * as config from "./internal/config.js"
import * as internal from "./internal/eventBus.js"
import { PublishError, SubscribeError } from "./internal/errors.js"
import * as telemetry from "./internal/telemetry.js"

/**
 * Why a subscription ended.
 * - `overflow`: its buffer hit the event or byte cap.
 * - `stalled`: its buffer held events and was not drained for `stallTimeout`.
 * - `shutdown`: the bus (or the server) is shutting down.
 * - `lifetime`: the SSE route's maximum connection lifetime elapsed.
 * - `unavailable`: its replay could not continue (the log failed, or the bus's replay budget was in
 *   use); nothing after the last delivered event was delivered, so resuming from it loses nothing.
 * - `closed`: the consumer itself closed the subscription (scope closed, stream interrupted).
 * - `log-reset`: the log lost continuity (its epoch changed, e.g. a flushed Redis, or events were
 *   trimmed before this node read them); the client resumes and learns the outcome (`reset`).
 *
 * @since 0.1.0
 * @category models
 */
export type EndReason = "overflow" | "stalled" | "shutdown" | "lifetime" | "unavailable" | "closed" | "log-reset"

/**
 * Why a cursor could not be resumed from exactly.
 * - `epoch-mismatch`: the cursor belongs to another incarnation of the log.
 * - `expired`: the events after the cursor are older than the log retains.
 * - `too-far-behind`: more than `maxReplay` matching events were published after it.
 * - `future`: the cursor is ahead of the log's head.
 * - `invalid`: the cursor is not a well-formed id.
 *
 * @since 0.1.0
 * @category models
 */
export type ResetReason = "epoch-mismatch" | "expired" | "too-far-behind" | "future" | "invalid"

/**
 * The explicit outcome of starting a subscription. `head` is the log position live delivery
 * continues after. `Live`: no cursor was given. `Resumed`: every matching event after the cursor is
 * delivered, then live, with no gap and no duplicate. `Reset`: the cursor cannot be served; delivery
 * continues live from `head` and the consumer must resynchronise.
 *
 * @since 0.1.0
 * @category models
 */
export type ResumeOutcome =
  | { readonly _tag: "Live"; readonly head: Event.EventId }
  | { readonly _tag: "Resumed"; readonly head: Event.EventId; readonly after: Event.EventId }
  | { readonly _tag: "Reset"; readonly head: Event.EventId; readonly reason: ResetReason; readonly message: string }

/**
 * How subscription starts are counted in {@link Stats}.
 *
 * @since 0.1.0
 * @category models
 */
export type ResumeStat = "live" | "resumed" | ResetReason

/**
 * A live subscription, valid for the lifetime of the scope it was acquired in.
 *
 * @since 0.1.0
 * @category models
 */
export interface Subscription {
  readonly outcome: ResumeOutcome
  /**
   * The first page of the replay (already part of `events`): the events after the cursor that fit the
   * subscription's byte cap. Later pages are read from the log as the consumer takes them, so a
   * resume never holds more than one page.
   */
  readonly replay: ReadonlyArray<Event.Event>
  /**
   * Replay, then live events, in log order. Ends cleanly when the subscription is ended, after every
   * event it holds has been emitted. Consume it once.
   */
  readonly events: Stream.Stream<Event.Event>
  /**
   * The same events as `events`, pulled directly: waits until at least one event is buffered (or
   * the subscription ended), then returns everything buffered and whether the subscription is done
   * (ended and drained), like `Mailbox.takeAll`. The cheapest way to drain; use it or `events`, not both.
   */
  readonly takeAll: Effect.Effect<readonly [events: Chunk.Chunk<Event.Event>, done: boolean]>
  /** Completes with the reason once the subscription has been ended. */
  readonly ended: Effect.Effect<EndReason>
  /** Ends the subscription now (what it holds is still emitted). */
  readonly end: (reason: EndReason) => Effect.Effect<void>
}

/**
 * Options of one subscription.
 *
 * @since 0.1.0
 * @category models
 */
export interface SubscribeOptions {
  /** Topic patterns (`orders/42`, `orders/*`); none means every topic. */
  readonly topics?: ReadonlyArray<string> | undefined
  /** A predicate applied with the topics, before buffering. It must not throw (a throw ends the subscription). */
  readonly filter?: ((event: Event.Event) => boolean) | undefined
  /** Resume after this cursor: an id or its `<epoch>-<seq>` string (e.g. a `Last-Event-ID`). */
  readonly after?: string | Event.EventId | undefined
  /** Buffer cap in events (default: the bus's). */
  readonly maxEvents?: number | undefined
  /** Buffer cap in encoded bytes (default: the bus's). */
  readonly maxBytes?: number | undefined
  /** Most matching events replayed before the resume becomes a `too-far-behind` reset (default: the bus's). */
  readonly maxReplay?: number | undefined
  /**
   * A non-empty buffer not drained for this long ends the subscription as `stalled` (default: the
   * bus's). Checked by the bus's sweep, which runs every `min(1 s, bus stallTimeout / 4)`.
   */
  readonly stallTimeout?: Duration.DurationInput | undefined
}

/**
 * Counters and gauges of one bus.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** The bus's `bus` label on its metrics (see {@link Options.name}). */
  readonly name: string
  readonly subscribers: number
  readonly bufferedEvents: number
  readonly bufferedBytes: number
  /** Frame bytes of replay pages read from the log and not yet taken by their consumers. */
  readonly replayBytes: number
  readonly published: number
  readonly delivered: number
  readonly ends: Readonly<Record<EndReason, number>>
  readonly resumes: Readonly<Record<ResumeStat, number>>
  readonly log: {
    readonly epoch: string
    readonly head: number
    readonly earliest: number | undefined
    /** The last sequence number this bus has fanned out. */
    readonly position: number
  }
}

export {
  /**
   * A publish that was refused; nothing of the batch was appended.
   *
   * @since 0.1.0
   * @category errors
   */
  PublishError,
  /**
   * A subscription that could not start.
   *
   * @since 0.1.0
   * @category errors
   */
  SubscribeError
}

/**
 * Options of the bus.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Per-subscriber buffer cap in events (default 1,000). */
  readonly maxEvents?: number | undefined
  /** Per-subscriber buffer cap in encoded bytes (default 1 MiB). */
  readonly maxBytes?: number | undefined
  /** A non-empty buffer not drained for this long ends the subscriber as `stalled` (default 30 s). */
  readonly stallTimeout?: Duration.DurationInput | undefined
  /** Most matching events a resume replays before it becomes a `too-far-behind` reset (default 1,000). */
  readonly maxReplay?: number | undefined
  /** Largest `data` accepted at publish, in UTF-8 bytes (default 1 MiB). */
  readonly maxEventBytes?: number | undefined
  /**
   * Most replay bytes held at once across every resuming subscription (default 64 MiB). A resume
   * whose page does not fit fails with `Unavailable` (the SSE route answers `200` and a clean end,
   * and the client retries); a replay already under way that cannot get its next page ends as
   * `unavailable`.
   */
  readonly maxReplayBytes?: number | undefined
  /**
   * The `bus` label of this bus's metrics (default `default`; 1 to 100 printable ASCII characters).
   * Names are unique among the buses open in one process: a bus opened while another of the same
   * name is open gets `-2`, `-3`, … appended (its `stats` say which).
   */
  readonly name?: string | undefined
}

/**
 * The event bus service.
 *
 * @since 0.1.0
 * @category tags
 */
export class EventBus extends Context.Tag("sluice/EventBus")<EventBus, {
  /**
   * Validates and appends one event. On the memory log it fans out before this completes; on a
   * shared log (Redis) every node fans it out when its tail reader reads it.
   */
  readonly publish: (input: Event.EventInput) => Effect.Effect<Event.Event, PublishError>
  /** Validates every input, then appends them atomically as one batch (all or none). */
  readonly publishAll: (inputs: Iterable<Event.EventInput>) => Effect.Effect<ReadonlyArray<Event.Event>, PublishError>
  /** Registers a bounded subscriber for the scope; resumes after `after` when given. */
  readonly subscribe: (options?: SubscribeOptions) => Effect.Effect<Subscription, SubscribeError, Scope.Scope>
  /**
   * `subscribe` as a stream, registered **before this effect returns** (like
   * `Stream.fromPubSub(p, { scoped: true })`): fork the consumer, then publish, and it sees every
   * event. The subscription lives until the scope closes or the stream ends, whichever is first.
   */
  readonly stream: (options?: SubscribeOptions) => Effect.Effect<Stream.Stream<Event.Event>, SubscribeError, Scope.Scope>
  /**
   * `subscribe` as a lazy stream: it registers only when the stream starts running, in the stream's
   * own scope. Events published between building it and its first pull are not seen (resume with
   * `after` if that matters). Prefer `stream`.
   */
  readonly streamLazy: (options?: SubscribeOptions) => Stream.Stream<Event.Event, SubscribeError>
  /** A snapshot of the bus's counters. */
  readonly stats: Effect.Effect<Stats>
  /** Ends every subscriber with `shutdown`; later subscriptions end at once. Runs when the layer closes. */
  readonly shutdown: Effect.Effect<void>
}>() {}

/**
 * Builds a bus over the {@link EventLog.EventLog} in context; it lives as long as the scope.
 * Publishes and subscription starts run in spans (`EventBus.publish`, `EventBus.publishAll`,
 * `EventBus.subscribe`) when a tracer other than Effect's built-in one is installed; resets and
 * ends are logged with their reason (`docs/effect.md`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options?: Options
): Effect.Effect<EventBus["Type"], ConfigError.ConfigError, EventLog.EventLog | Scope.Scope> =>
  Effect.flatMap(EventLog.EventLog, (log) => Effect.map(internal.make(options, log), telemetry.instrument))

/**
 * The bus as a layer over an {@link EventLog.EventLog}.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<EventBus, ConfigError.ConfigError, EventLog.EventLog> =>
  Layer.scoped(EventBus, make(options))

/**
 * The bus configured from `Config`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<Options>
): Layer.Layer<EventBus, ConfigError.ConfigError, EventLog.EventLog> =>
  Layer.scoped(EventBus, Effect.flatMap(Config.unwrap(config), make))

/**
 * The embedded default: a bus over a fresh memory log.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (
  options?: Options & { readonly log?: EventLog.MemoryOptions | undefined }
): Layer.Layer<EventBus | EventLog.EventLog, ConfigError.ConfigError> =>
  Layer.provideMerge(layer(options), EventLog.layerMemory(options?.log))

/**
 * The bus's options from the environment, over `defaults`: `SLUICE_BUS_MAX_EVENTS`,
 * `SLUICE_BUS_MAX_BYTES`, `SLUICE_BUS_MAX_REPLAY`, `SLUICE_BUS_MAX_EVENT_BYTES`,
 * `SLUICE_BUS_MAX_REPLAY_BYTES` (positive integers) and `SLUICE_BUS_STALL_TIMEOUT` (a duration such
 * as `30 seconds`). A bad value fails with a `ConfigError` naming its variable.
 *
 * @since 0.1.0
 * @category config
 */
export const fromEnv = (defaults?: Options): Config.Config<Options> =>
  Config.all({
    maxEvents: config.integerVar("SLUICE_BUS_MAX_EVENTS"),
    maxBytes: config.integerVar("SLUICE_BUS_MAX_BYTES"),
    maxReplay: config.integerVar("SLUICE_BUS_MAX_REPLAY"),
    maxEventBytes: config.integerVar("SLUICE_BUS_MAX_EVENT_BYTES"),
    maxReplayBytes: config.integerVar("SLUICE_BUS_MAX_REPLAY_BYTES"),
    stallTimeout: config.durationVar("SLUICE_BUS_STALL_TIMEOUT"),
    name: Config.option(Config.string("SLUICE_BUS_NAME"))
  }).pipe(Config.map((env) => config.overlay(defaults, env)))
