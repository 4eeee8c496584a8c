/**
 * The error classes of the public modules, in a leaf module: implementation files construct them
 * without importing the public modules at runtime (no import cycles). Each public module re-exports
 * its own.
 * @internal
 */
import * as Data from "effect/Data"

/**
 * A failure of the log backend. `Expired`: the requested range is older than retention.
 * `Unavailable`: the backend cannot be reached or answered garbage. `InvalidOption`: the backend
 * was configured wrongly (it names the option). `InvalidInput`: an append's input is invalid (e.g.
 * a bad idempotency key); nothing of the batch was appended.
 *
 * @internal
 */
export class EventLogError extends Data.TaggedError("EventLogError")<{
  readonly reason: "Expired" | "Unavailable" | "InvalidOption" | "InvalidInput"
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * A publish that was refused; nothing of the batch was appended.
 *
 * @internal
 */
export class PublishError extends Data.TaggedError("PublishError")<{
  readonly reason: "InvalidTopic" | "InvalidType" | "InvalidData" | "InvalidIdempotencyKey" | "TooLarge" | "Unavailable"
  readonly message: string
  /** The index of the offending input in the batch. */
  readonly index?: number | undefined
  readonly cause?: unknown
}> {}

/**
 * A subscription that could not start.
 *
 * @internal
 */
export class SubscribeError extends Data.TaggedError("SubscribeError")<{
  readonly reason: "InvalidTopic" | "InvalidOption" | "Unavailable"
  readonly message: string
  readonly cause?: unknown
}> {}
