/**
 * A Server-Sent-Events client as one Effect `Stream`, on `@effect/platform`'s `HttpClient` (the
 * fetch client in browsers and Node, or the Node client).
 *
 * The stream survives every disconnect: after a clean end, a network error, a `5xx` or a silent
 * connection it waits the server's `retry:` (with capped, fully jittered exponential backoff on
 * repeated failures), reconnects with `Last-Event-ID` set to the last id it received, and drops any
 * event whose id is not after the last one within the same epoch. A sluice `event: reset` arrives as
 * a {@link Reset} value, never as a silent jump. Only a terminal answer (`401`, `403`, `404`, `204`,
 * another refusal, a wrong content type) or an event over {@link Options.maxEventSize} fails the
 * stream, with an {@link SseClientError}. Parsing follows the WHATWG processing model
 * (`eventsource-parser`); any spec-compliant SSE server works. Guide: `docs/client.md`.
 *
 * Interrupting the consumer closes the connection and leaves nothing running.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import type * as EventBus from "./EventBus.js"
import * as internal from "./internal/sseClient.js"

/**
 * One event the server sent.
 *
 * @since 0.1.0
 * @category models
 */
export interface Message<A = string> {
  readonly _tag: "Message"
  /**
   * The cursor after this event, as a browser's `lastEventId`: the event's `id`, or the last id
   * received before it when the frame had none (`""`: no cursor). From sluice: `<epoch>-<seq>`.
   */
  readonly id: string
  /** The SSE event type (`message` when the frame had no `event:` field). */
  readonly type: string
  /** The data, or what {@link Options.decode} made of it. */
  readonly data: A
}

/**
 * The server could not resume from the cursor (sluice's `event: reset`): live events continue after
 * `head`, and whatever happened between the cursor and `head` must be resynchronised from the
 * application's own source of truth.
 *
 * @since 0.1.0
 * @category models
 */
export interface Reset {
  readonly _tag: "Reset"
  /** `epoch-mismatch`, `expired`, `too-far-behind`, `future` or `invalid` (see `docs/delivery.md`). */
  readonly reason: EventBus.ResetReason | (string & {})
  /** The id live delivery continues after; the cursor moves here. */
  readonly head: string
  readonly message: string | undefined
}

/**
 * What the stream of {@link stream} carries.
 *
 * @since 0.1.0
 * @category models
 */
export type Item<A = string> = Message<A> | Reset

/**
 * A connection was answered `200 text/event-stream` (from {@link streamWithStatus}).
 *
 * @since 0.1.0
 * @category models
 */
export interface Connected {
  readonly _tag: "Connected"
  /** The `Last-Event-ID` this connection resumed from (`""`: none). */
  readonly lastEventId: string
}

/**
 * Why a connection ended and how long the client waits before the next (from {@link streamWithStatus}).
 *
 * - `End`: the server ended the stream cleanly; `reason` is sluice's `event: end` reason
 *   (`overflow`, `stalled`, `lifetime`, `shutdown`, `unavailable`), `undefined` without one.
 * - `NetworkError`: refused, reset or broken before or during the body.
 * - `ServerError`: a retryable status (`5xx`, `408`, `429`); `retryAfter` is the wait a `429` or
 *   `503` asked for with `Retry-After` (milliseconds), which then replaces the backoff, capped at
 *   {@link Options.maxRetryAfter}.
 * - `Idle`: a read waited {@link Options.idleTimeout} without a byte (no event, no heartbeat).
 *
 * @since 0.1.0
 * @category models
 */
export type DisconnectCause =
  | { readonly _tag: "End"; readonly reason: string | undefined }
  | { readonly _tag: "NetworkError"; readonly message: string }
  | { readonly _tag: "ServerError"; readonly status: number; readonly retryAfter: number | undefined }
  | { readonly _tag: "Idle" }

/**
 * A connection ended; the client reconnects after `delay` milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface Disconnected {
  readonly _tag: "Disconnected"
  readonly cause: DisconnectCause
  /** Milliseconds until the next attempt: the server's `retry:` plus the backoff. */
  readonly delay: number
  /** Consecutive connections that delivered nothing (0 after one that delivered an event or a reset). */
  readonly failures: number
}

/**
 * Connection status values interleaved by {@link streamWithStatus}.
 *
 * @since 0.1.0
 * @category models
 */
export type Status = Connected | Disconnected

/**
 * Why the stream stopped for good.
 *
 * | reason | when |
 * |---|---|
 * | `Unauthorized` | `401` |
 * | `Forbidden` | `403` |
 * | `NotFound` | `404` |
 * | `NoContent` | `204` (the SSE way to say "stop") |
 * | `Status` | any other status that is not `200`, `5xx`, `408` or `429` (e.g. `400` for a malformed topic) |
 * | `ContentType` | `200` without `text/event-stream` |
 * | `EventTooLarge` | one event buffered more than `maxEventSize` characters |
 * | `InvalidUrl` | the URL cannot be parsed |
 * | `InvalidOption` | an option is out of range (e.g. `maxEventSize: 0`, `retry: "soon"`), before any request |
 *
 * @since 0.1.0
 * @category errors
 */
export type SseClientErrorReason =
  | "Unauthorized"
  | "Forbidden"
  | "NotFound"
  | "NoContent"
  | "Status"
  | "ContentType"
  | "EventTooLarge"
  | "InvalidUrl"
  | "InvalidOption"

/**
 * A terminal answer: the stream fails with it and does not reconnect. `status` is the HTTP status
 * when there was an answer.
 *
 * @since 0.1.0
 * @category errors
 */
export const SseClientError: new(args: {
  readonly reason: SseClientErrorReason
  readonly status?: number | undefined
  readonly message: string
}) => SseClientError = internal.SseClientError

/**
 * @since 0.1.0
 * @category errors
 */
export type SseClientError = internal.SseClientError

/**
 * Turns a message's data into a typed value (e.g. a typed topic's Schema decoder). A failure fails
 * the stream with that error: an event that cannot be decoded is never skipped silently.
 *
 * @since 0.1.0
 * @category models
 */
export type Decode<A, E, R> = (message: Message) => Effect.Effect<A, E, R>

/**
 * Options of {@link stream}. Durations take any `Duration.DurationInput`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Topic patterns, sent as `topic` query parameters (sluice's route; none = every topic). */
  readonly topics?: ReadonlyArray<string> | undefined
  /** Resume after this id on the first request (sent as `Last-Event-ID`). */
  readonly lastEventId?: string | undefined
  /**
   * Request headers (e.g. `Authorization`), or an effect that gives them, run before every
   * connection (so a refreshed token is used on reconnect).
   */
  readonly headers?: Record<string, string> | Effect.Effect<Record<string, string>> | undefined
  /** Reconnection delay until the server sends `retry:` (default 3 s). */
  readonly retry?: Duration.DurationInput | undefined
  /** Base of the exponential backoff after consecutive failures (default 1 s). */
  readonly backoff?: Duration.DurationInput | undefined
  /** Cap of the backoff added to `retry` (default 30 s). */
  readonly maxBackoff?: Duration.DurationInput | undefined
  /** The server's heartbeat interval (default 15 s, the route's default). */
  readonly heartbeat?: Duration.DurationInput | undefined
  /**
   * A connection whose read has waited this long without a byte (or whose request has no answer
   * after this long) is replaced; time the consumer spends between reads does not count (default
   * 3 × `heartbeat`; `Duration.infinity` turns the check off).
   */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /**
   * Longest wait a `Retry-After` header (on `429` and `503`) is honoured with (default 60 s); it
   * replaces the backoff for that attempt.
   */
  readonly maxRetryAfter?: Duration.DurationInput | undefined
  /** Most characters one event may buffer before the stream fails with `EventTooLarge` (default 4 Mi). */
  readonly maxEventSize?: number | undefined
}

/**
 * Options of {@link stream} with a {@link Decode} function.
 *
 * @since 0.1.0
 * @category models
 */
export interface DecodeOptions<A, E, R> extends Options {
  readonly decode: Decode<A, E, R>
}

/**
 * The events of an SSE endpoint as one resume-safe `Stream` of {@link Message} and {@link Reset}
 * values, across any number of reconnects. Fails only with a terminal {@link SseClientError} (or the
 * error of `decode`).
 *
 * @example
 * ```ts
 * import { FetchHttpClient } from "@effect/platform"
 * import { Effect, Stream } from "effect"
 * import { SseClient } from "sluice"
 *
 * SseClient.stream("http://127.0.0.1:8080/events", { topics: ["orders/*"] }).pipe(
 *   Stream.runForEach((item) => Effect.log(item._tag === "Message" ? `${item.id} ${item.data}` : `reset ${item.reason}`)),
 *   Effect.provide(FetchHttpClient.layer)
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const stream: {
  // The decoding signature first, so that `decode: (message) => …` gets its parameter's type.
  <A, E, R>(
    url: string | URL,
    options: DecodeOptions<A, E, R>
  ): Stream.Stream<Item<A>, SseClientError | E, HttpClient.HttpClient | R>
  (url: string | URL, options?: Options): Stream.Stream<Item, SseClientError, HttpClient.HttpClient>
} = internal.stream

/**
 * Like {@link stream}, with the connection's {@link Status} values interleaved: a `Connected` when a
 * connection opens, a `Disconnected` (cause and delay) when one ends.
 *
 * @since 0.1.0
 * @category constructors
 */
export const streamWithStatus: {
  <A, E, R>(
    url: string | URL,
    options: DecodeOptions<A, E, R>
  ): Stream.Stream<Item<A> | Status, SseClientError | E, HttpClient.HttpClient | R>
  (url: string | URL, options?: Options): Stream.Stream<Item | Status, SseClientError, HttpClient.HttpClient>
} = internal.streamWithStatus
