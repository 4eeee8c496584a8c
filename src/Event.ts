/**
 * Events, their ids and the validation rules for topics and types.
 *
 * An event's id is `{ epoch, seq }`: `seq` strictly increases within one log, `epoch` names one
 * incarnation of that log. On the wire an id renders as `<epoch>-<seq>` (for example `k3x9q2-42`).
 *
 * @since 0.1.0
 */
import type * as Either from "effect/Either"
import * as internal from "./internal/event.js"

/**
 * The position of an event in the log.
 *
 * @since 0.1.0
 * @category models
 */
export interface EventId {
  /** Names one incarnation of the log; a log whose history was lost gets a new epoch. */
  readonly epoch: string
  /** Strictly increasing within an epoch, starting at 1. `0` means "before the first event". */
  readonly seq: number
}

/**
 * One event as stored in the log and delivered to subscribers.
 *
 * @since 0.1.0
 * @category models
 */
export interface Event {
  readonly id: EventId
  /** Where the event was published, e.g. `orders/42`. */
  readonly topic: string
  /** The SSE event type; `message` is the default and is omitted on the wire. */
  readonly type: string
  /** The payload, delivered verbatim (CR and CRLF normalise to LF over SSE). */
  readonly data: string
  /** Milliseconds since the Unix epoch when the log accepted the event. */
  readonly time: number
}

/**
 * Builds an event the way a log backend should: the result has the public fields of {@link Event}
 * and a private slot for its encoded SSE frame, so fan-out, writers and replays encode it once.
 * Any object of the `Event` shape works everywhere; this one is just cheaper to deliver.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (fields: Event) => Event = internal.makeEvent

/**
 * What a publisher supplies; the log assigns the id and time.
 *
 * @since 0.1.0
 * @category models
 */
export interface EventInput {
  readonly topic: string
  readonly type?: string | undefined
  readonly data: string
  /**
   * Makes the publish idempotent: within the log's idempotency window (default 5 minutes) a repeat
   * of this key appends nothing and returns the first event, on any node sharing the log.
   * 1-200 bytes of UTF-8 without control characters.
   */
  readonly idempotencyKey?: string | undefined
}

/**
 * A cursor that could not be parsed (always a value, never a throw).
 *
 * @since 0.1.0
 * @category models
 */
export interface InvalidCursor {
  readonly _tag: "InvalidCursor"
  readonly input: string
  readonly message: string
}

/**
 * Renders an id as `<epoch>-<seq>`.
 *
 * @since 0.1.0
 * @category conversions
 */
export const formatId: (id: EventId) => string = internal.formatId

/**
 * Parses `<epoch>-<seq>` strictly: a lowercase alphanumeric epoch of 1-32 characters, a dash, and a
 * canonical decimal sequence (no sign, no leading zeros, no exponent, at most `Number.MAX_SAFE_INTEGER`).
 *
 * @since 0.1.0
 * @category conversions
 */
export const parseId: (input: string) => Either.Either<EventId, InvalidCursor> = internal.parseId

/**
 * Returns why a topic is invalid, or `undefined` when it is valid: 1-200 characters of
 * `A-Z a-z 0-9 . _ ~ / -`.
 *
 * @since 0.1.0
 * @category guards
 */
export const validateTopic: (topic: unknown) => string | undefined = internal.validateTopic

/**
 * Returns why a subscription topic pattern is invalid, or `undefined`. A pattern is a topic,
 * optionally ending in `*` to match every topic with that prefix (`orders/*`); `*` alone matches all.
 *
 * @since 0.1.0
 * @category guards
 */
export const validatePattern: (pattern: unknown) => string | undefined = internal.validatePattern

/**
 * Returns why an event type is invalid, or `undefined`: 1-128 characters of `A-Z a-z 0-9 . _ ~ : / -`,
 * and not one of the types the SSE protocol reserves (`reset`, `end`).
 *
 * @since 0.1.0
 * @category guards
 */
export const validateType: (type: unknown) => string | undefined = internal.validateType

/**
 * Returns why an idempotency key is invalid, or `undefined`: 1-200 bytes of UTF-8 text without
 * control characters.
 *
 * @since 0.1.0
 * @category guards
 */
export const validateIdempotencyKey: (key: unknown) => string | undefined = internal.validateIdempotencyKey

/**
 * Compiles topic patterns into a predicate; `undefined` means "every topic".
 *
 * @since 0.1.0
 * @category constructors
 */
export const matchTopics: (patterns: ReadonlyArray<string>) => ((topic: string) => boolean) | undefined =
  internal.compileTopics
