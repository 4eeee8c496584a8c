/**
 * {@link SseClient} for browser tabs that share one connection per URL and topic set: an opt-in
 * entry point of its own (`sluice/SseClientShared`, not re-exported from `sluice`), so Node
 * programs never load it.
 *
 * One tab holds the connection: the one that holds a Web Lock (`navigator.locks`) named after the
 * URL and topic set. It hands every item to the other tabs through a `BroadcastChannel` of the same
 * name. When that tab closes (or its stream ends), the browser gives the lock to another tab, which
 * connects and resumes from the last id it received. Every tab drops items whose id is not after
 * the last it saw within the same epoch, and delivers `Reset` values as they come. Without Web
 * Locks or `BroadcastChannel` (Node 20, old browsers) each stream is a plain {@link SseClient.stream}.
 * Guide: `docs/client.md`.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as Duration from "effect/Duration"
import type * as Stream from "effect/Stream"
import * as internal from "./internal/sseClientShared.js"
import type * as SseClient from "./SseClient.js"

/**
 * This tab took the connection over (from {@link streamWithStatus}); it resumes from `lastEventId`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Leading {
  readonly _tag: "Leading"
  readonly lastEventId: string
}

/**
 * Options of {@link stream}: those of {@link SseClient.Options}, plus the sharing ones.
 *
 * `lastEventId` is where this tab resumes if it becomes the leader; a tab that follows receives
 * what the leader receives from the moment it joins.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends SseClient.Options {
  /** The lock and channel name (default: the absolute URL and the sorted topics). */
  readonly key?: string | undefined
  /**
   * How long a tab waits for the old leader's last items when a new leader resumed after its last
   * id; then it delivers a `Reset` (reason `leader-changed`) and goes on (default 5 s).
   */
  readonly handoverTimeout?: Duration.DurationInput | undefined
}

/**
 * Options of {@link stream} with a {@link SseClient.Decode} function (run in every tab).
 *
 * @since 0.1.0
 * @category models
 */
export interface DecodeOptions<A, E, R> extends Options {
  readonly decode: SseClient.Decode<A, E, R>
}

/**
 * The items of an SSE endpoint, as {@link SseClient.stream} gives them, over one connection shared
 * by every tab of the origin that streams the same URL and topics.
 *
 * @example
 * ```ts
 * import { FetchHttpClient } from "@effect/platform"
 * import { Effect, Stream } from "effect"
 * import * as SseClientShared from "sluice/SseClientShared"
 *
 * SseClientShared.stream("/events", { topics: ["orders/*"] }).pipe(
 *   Stream.runForEach((item) => Effect.log(item._tag === "Message" ? item.data : `reset ${item.reason}`)),
 *   Effect.provide(FetchHttpClient.layer)
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const stream: {
  <A, E, R>(
    url: string | URL,
    options: DecodeOptions<A, E, R>
  ): Stream.Stream<SseClient.Item<A>, SseClient.SseClientError | E, HttpClient.HttpClient | R>
  (url: string | URL, options?: Options): Stream.Stream<SseClient.Item, SseClient.SseClientError, HttpClient.HttpClient>
} = internal.stream

/**
 * Like {@link stream}, with a {@link Leading} value when this tab takes the connection over, and the
 * `Connected` and `Disconnected` values of the connections it holds.
 *
 * @since 0.1.0
 * @category constructors
 */
export const streamWithStatus: {
  <A, E, R>(
    url: string | URL,
    options: DecodeOptions<A, E, R>
  ): Stream.Stream<SseClient.Item<A> | SseClient.Status | Leading, SseClient.SseClientError | E, HttpClient.HttpClient | R>
  (
    url: string | URL,
    options?: Options
  ): Stream.Stream<SseClient.Item | SseClient.Status | Leading, SseClient.SseClientError, HttpClient.HttpClient>
} = internal.streamWithStatus
