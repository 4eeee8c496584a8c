/** @internal */
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Chunk from "effect/Chunk"
import type * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as SseClient from "../SseClient.js"
import { type Cursor, type Decoded, Decoder, makeCursor } from "./sseClientDecoder.js"

/** @internal */
export class SseClientError extends Data.TaggedError("SseClientError")<{
  readonly reason: SseClient.SseClientErrorReason
  readonly status?: number | undefined
  readonly message: string
}> {}

/** Options with every default applied (durations in milliseconds; `undefined`: no idle check). @internal */
export interface Config {
  readonly retry: number
  readonly backoff: number
  readonly maxBackoff: number
  readonly idleTimeout: number | undefined
  readonly maxEventSize: number
  readonly maxRetryAfter: number
}

/** Thrown inside {@link resolve} only, and turned into a typed error there. */
class BadOption {
  constructor(readonly message: string) {}
}

const millis = (name: string, input: Duration.DurationInput | undefined, fallback: number): number => {
  if (input === undefined) return fallback
  // Effect reads a negative or NaN number as zero: a plain number must be a real, non-negative one.
  const decoded = typeof input === "number" && !(input >= 0) ? Option.none() : Duration.decodeUnknown(input)
  if (decoded._tag === "None") {
    throw new BadOption(`${name} must be a duration such as "5 seconds", got ${JSON.stringify(String(input))}`)
  }
  return Duration.toMillis(decoded.value)
}

/** Options with every default applied, or an `InvalidOption` error naming the option. @internal */
export const resolve = (options: SseClient.Options | undefined): Either.Either<Config, SseClientError> => {
  try {
    const heartbeat = millis("heartbeat", options?.heartbeat, 15_000)
    const idle = millis("idleTimeout", options?.idleTimeout, 3 * heartbeat)
    const maxEventSize = options?.maxEventSize ?? 4 * 1024 * 1024
    if (!Number.isSafeInteger(maxEventSize) || maxEventSize < 1) {
      throw new BadOption(`maxEventSize must be a positive integer, got ${maxEventSize}`)
    }
    return Either.right({
      retry: millis("retry", options?.retry, 3_000),
      backoff: millis("backoff", options?.backoff, 1_000),
      maxBackoff: millis("maxBackoff", options?.maxBackoff, 30_000),
      idleTimeout: Number.isFinite(idle) && idle > 0 ? idle : undefined,
      maxEventSize,
      maxRetryAfter: millis("maxRetryAfter", options?.maxRetryAfter, 60_000)
    })
  } catch (error) {
    if (!(error instanceof BadOption)) throw error
    return Either.left(new SseClientError({ reason: "InvalidOption", message: error.message }))
  }
}

/**
 * The wait before the next attempt: the reconnection time, plus after `failures` consecutive
 * failures a full-jitter exponential backoff, `jitter * min(maxBackoff, backoff * 2^(failures-1))`
 * with `jitter` uniform in [0, 1).
 * @internal
 */
export const reconnectDelay = (config: Config, retry: number, failures: number, jitter: number): number =>
  failures === 0 ? retry : retry + Math.floor(jitter * Math.min(config.maxBackoff, config.backoff * 2 ** (failures - 1)))

/**
 * A `Retry-After` value in milliseconds from `now`: delay-seconds or an HTTP date (a past date is
 * 0); `undefined` when absent or unreadable.
 * @internal
 */
export const retryAfter = (value: string | undefined, now: number): number | undefined => {
  if (value === undefined) return undefined
  const text = value.trim()
  if (/^\d+$/.test(text)) return Math.min(Number(text), 2 ** 31) * 1000
  if (!/[a-z]/i.test(text)) return undefined // a number with a sign or a fraction is neither form
  const at = Date.parse(text)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

/** Nothing arrived within the idle timeout (internal: it becomes a `Disconnected` value). */
class IdleTimeout {
  readonly _tag = "IdleTimeout"
}

const IDLE: SseClient.DisconnectCause = { _tag: "Idle" }

type Output = SseClient.Item | SseClient.Status

/** What one connection decided about the next. */
interface Attempt {
  cause: SseClient.DisconnectCause
  /** Whether it delivered an event or a reset (or stayed open longer than the backoff cap). */
  healthy: boolean
}

const terminal = (response: HttpClientResponse.HttpClientResponse): SseClientError | undefined => {
  const status = response.status
  if (status === 200) {
    const type = response.headers["content-type"] ?? ""
    if (/^\s*text\/event-stream\s*(;|$)/i.test(type)) return undefined
    return new SseClientError({
      reason: "ContentType",
      status,
      message: `expected text/event-stream, got ${type === "" ? "no content type" : JSON.stringify(type.slice(0, 100))}`
    })
  }
  if (status >= 500 || status === 408 || status === 429) return undefined
  const reason = status === 401
    ? "Unauthorized"
    : status === 403
    ? "Forbidden"
    : status === 404
    ? "NotFound"
    : status === 204
    ? "NoContent"
    : "Status"
  return new SseClientError({ reason, status, message: `the server answered ${status}` })
}

const networkError = (error: HttpClientError.HttpClientError): SseClient.DisconnectCause => {
  const cause = error.cause instanceof Error ? error.cause : undefined
  const detail = cause?.cause instanceof Error ? cause.cause.message : cause?.message
  return { _tag: "NetworkError", message: detail ?? error.message }
}

const makeRequest = (url: string | URL, options: SseClient.Options | undefined) => {
  // Only `Accept` (a CORS-safelisted header): a `Cache-Control` request header would force a
  // preflight on every cross-origin connect. The server's `no-cache` answer keeps caches out.
  let request = HttpClientRequest.get(url).pipe(HttpClientRequest.setHeaders({ accept: "text/event-stream" }))
  for (const topic of options?.topics ?? []) request = HttpClientRequest.appendUrlParam(request, "topic", topic)
  const headers = options?.headers
  const withHeaders = headers === undefined
    ? Effect.succeed(request)
    : Effect.isEffect(headers)
    ? Effect.map(headers, (h) => HttpClientRequest.setHeaders(request, h))
    : Effect.succeed(HttpClientRequest.setHeaders(request, headers))
  return (cursor: Cursor) =>
    Effect.map(
      withHeaders,
      (r) => cursor.id === "" ? r : HttpClientRequest.setHeader(r, "last-event-id", headerValue(cursor.id))
    )
}

/**
 * A header value carries bytes: a non-ASCII id is sent as its UTF-8 bytes, as the spec asks (fetch
 * refuses characters above U+00FF, and would retry a refused request forever).
 */
const headerValue = (id: string): string => {
  for (let i = 0; i < id.length; i++) {
    if (id.charCodeAt(i) > 0x7f) return String.fromCharCode(...new TextEncoder().encode(id))
  }
  return id
}

/**
 * Completes once a read of the body has waited `idle` ms for bytes: one timer per idle window
 * (re-armed from the last activity when it fires), not one per chunk. Time the consumer spends
 * between reads never counts: a slow consumer is not a dead connection.
 */
const watchdog = (clock: Clock.Clock, idle: number, activity: Activity): Effect.Effect<void> => {
  const loop: Effect.Effect<void> = Effect.suspend(() => {
    const due = activity.reading ? activity.at + idle - clock.unsafeCurrentTimeMillis() : idle
    return due <= 0 ? Effect.void : Effect.zipRight(Effect.sleep(due), loop)
  })
  return loop
}

/** When a read of the body last started or got bytes, whether one is waiting, and whether the watchdog gave up. */
interface Activity {
  at: number
  reading: boolean
  idle: boolean
}

/** The items `bytes` completed (the size-limit sentinel left out: `decoder.tooLarge` says it). */
const decodeBytes = (decoder: Decoder, bytes: Chunk.Chunk<Uint8Array>): Array<SseClient.Item> => {
  let out: Array<Decoded> = []
  for (const piece of bytes) {
    const decoded = decoder.feed(piece)
    if (out.length === 0) out = decoded
    else for (let i = 0; i < decoded.length; i++) out.push(decoded[i]!)
    if (decoder.tooLarge) {
      out.pop() // TOO_LARGE
      break
    }
  }
  return out as Array<SseClient.Item>
}

/**
 * The body's bytes decoded into items: one chunk per read that completed any (a read that completed
 * none reads on), ending after an event over the size limit. With `activity`, keeps it up to date
 * around every read for the watchdog.
 */
const items = (
  response: HttpClientResponse.HttpClientResponse,
  clock: Clock.Clock,
  activity: Activity | undefined,
  decoder: Decoder
): Stream.Stream<SseClient.Item, HttpClientError.ResponseError> =>
  Stream.unwrapScoped(Effect.map(Stream.toPull(response.stream), (pull) => {
    const done = Effect.sync(() => {
      activity!.reading = false
      activity!.at = clock.unsafeCurrentTimeMillis()
    })
    const read = activity === undefined ? pull : Effect.suspend(() => {
      activity.reading = true
      activity.at = clock.unsafeCurrentTimeMillis()
      return Effect.ensuring(pull, done)
    })
    const next: Effect.Effect<Chunk.Chunk<SseClient.Item>, Option.Option<HttpClientError.ResponseError>> = Effect.suspend(
      () =>
        decoder.tooLarge ? Effect.fail(Option.none()) : Effect.flatMap(read, (bytes) => {
          const out = decodeBytes(decoder, bytes)
          return out.length === 0 && !decoder.tooLarge ? next : Effect.succeed(Chunk.unsafeFromArray(out))
        })
    )
    return Stream.repeatEffectChunkOption(next)
  }))

/** The body of one `200 text/event-stream` answer, decoded; records how it ended in `attempt`. */
const body = (
  response: HttpClientResponse.HttpClientResponse,
  config: Config,
  clock: Clock.Clock,
  activity: Activity,
  decoder: Decoder,
  attempt: Attempt
): Stream.Stream<Output, SseClientError> =>
  items(response, clock, config.idleTimeout === undefined ? undefined : activity, decoder).pipe(
    Stream.catchAll((error) => {
      attempt.cause = activity.idle ? IDLE : networkError(error)
      return Stream.empty
    }),
    Stream.concat(Stream.suspend(() => {
      if (decoder.tooLarge) {
        return Stream.fail(
          new SseClientError({
            reason: "EventTooLarge",
            message: `an event buffered more than ${config.maxEventSize} characters`
          })
        )
      }
      if (activity.idle) attempt.cause = IDLE
      else if (attempt.cause._tag === "End") attempt.cause = { _tag: "End", reason: decoder.endReason }
      return Stream.empty
    }))
  )

/** One connection: connect, check the answer, stream the body; the scope owns the socket. */
const connection = (
  client: HttpClient.HttpClient.With<HttpClientError.HttpClientError, Scope.Scope>,
  request: (cursor: Cursor) => Effect.Effect<HttpClientRequest.HttpClientRequest>,
  config: Config,
  cursor: Cursor,
  attempt: Attempt
): Stream.Stream<Output, SseClientError> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const from = cursor.id
    const clock = yield* Effect.clock
    const opened = clock.unsafeCurrentTimeMillis()
    // The request lives in a scope of its own: closing it aborts the request (`HttpClient.withScope`).
    const requestScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    const execute = Effect.flatMap(request(cursor), (r) => Scope.extend(client.execute(r), requestScope))
    const answer = yield* (config.idleTimeout === undefined
      ? execute
      : Effect.timeoutFail(execute, { duration: config.idleTimeout, onTimeout: () => new IdleTimeout() })).pipe(
        Effect.either
      )
    if (answer._tag === "Left") {
      const error = answer.left
      if (error._tag === "RequestError" && error.reason === "InvalidUrl") {
        return Stream.fail(new SseClientError({ reason: "InvalidUrl", message: error.message }))
      }
      attempt.cause = error._tag === "IdleTimeout" ? IDLE : networkError(error)
      return Stream.empty
    }
    const response = answer.right
    const refused = terminal(response)
    if (refused !== undefined) return Stream.fail(refused)
    if (response.status !== 200) {
      const status = response.status
      attempt.cause = {
        _tag: "ServerError",
        status,
        retryAfter: status === 429 || status === 503
          ? retryAfter(response.headers["retry-after"], clock.unsafeCurrentTimeMillis())
          : undefined
      }
      return Stream.empty
    }
    const decoder = new Decoder(cursor, config.maxEventSize)
    attempt.cause = { _tag: "End", reason: undefined }
    const activity: Activity = { at: clock.unsafeCurrentTimeMillis(), reading: false, idle: false }
    if (config.idleTimeout !== undefined) {
      // Silence aborts the request, which ends the body; the connection's scope stops the watchdog.
      yield* Effect.forkScoped(Effect.zipRight(
        watchdog(clock, config.idleTimeout, activity),
        Effect.suspend(() => {
          activity.idle = true
          return Scope.close(requestScope, Exit.void)
        })
      ))
    }
    return Stream.succeed<Output>({ _tag: "Connected", lastEventId: from }).pipe(
      Stream.concat(body(response, config, clock, activity, decoder, attempt)),
      Stream.ensuring(Effect.sync(() => {
        attempt.healthy = decoder.accepted > 0 || clock.unsafeCurrentTimeMillis() - opened >= config.maxBackoff
      }))
    )
  }))

/**
 * Connections one after the other, forever, each followed by its `Disconnected` value and the wait.
 * @internal
 */
export const streamWithStatus = <A = string, E = never, R = never>(
  url: string | URL,
  options?: SseClient.Options & { readonly decode?: SseClient.Decode<A, E, R> | undefined }
): Stream.Stream<SseClient.Item<A> | SseClient.Status, SseClientError | E, HttpClient.HttpClient | R> => {
  const loop = Stream.unwrap(Effect.gen(function*() {
    const client = HttpClient.withScope(yield* HttpClient.HttpClient)
    const config = yield* resolve(options)
    const request = makeRequest(url, options)
    const cursor = makeCursor(options?.lastEventId)
    let failures = 0
    const next = Stream.suspend(() => {
      const attempt: Attempt = { cause: { _tag: "End", reason: undefined }, healthy: false }
      return connection(client, request, config, cursor, attempt).pipe(
        Stream.concat(Stream.unwrap(Effect.gen(function*() {
          failures = attempt.healthy ? 0 : failures + 1
          const asked = attempt.cause._tag === "ServerError" ? attempt.cause.retryAfter : undefined
          const delay = asked !== undefined
            ? Math.min(asked, config.maxRetryAfter)
            : reconnectDelay(config, cursor.retry ?? config.retry, failures, yield* Random.next)
          const disconnected: SseClient.Disconnected = { _tag: "Disconnected", cause: attempt.cause, delay, failures }
          return Stream.concat(Stream.make(disconnected), Stream.fromEffect(Effect.sleep(delay)).pipe(Stream.drain))
        })))
      )
    })
    return Stream.forever(next)
  }))
  return decodeItems(loop, options?.decode)
}

/** The messages of `items` with their data decoded by `decode` (none: as they are). @internal */
export const decodeItems = <S extends { readonly _tag: string }, A, E, R, E2, R2>(
  items: Stream.Stream<SseClient.Item | S, E2, R2>,
  decode: SseClient.Decode<A, E, R> | undefined
): Stream.Stream<SseClient.Item<A> | S, E | E2, R | R2> => {
  if (decode === undefined) return items as Stream.Stream<SseClient.Item<A> | S, E2, R2>
  return Stream.mapEffect(
    items,
    (item): Effect.Effect<SseClient.Item<A> | S, E, R> =>
      item._tag === "Message"
        ? Effect.map(decode(item as SseClient.Message), (data): SseClient.Message<A> => ({
          _tag: "Message",
          id: (item as SseClient.Message).id,
          type: (item as SseClient.Message).type,
          data
        }))
        : Effect.succeed(item as SseClient.Reset | S)
  )
}

/** @internal */
export const stream = <A = string, E = never, R = never>(
  url: string | URL,
  options?: SseClient.Options & { readonly decode?: SseClient.Decode<A, E, R> | undefined }
): Stream.Stream<SseClient.Item<A>, SseClientError | E, HttpClient.HttpClient | R> =>
  onlyItems(streamWithStatus(url, options))

/**
 * The items of `stream` without its status values. Statuses are rare, so a chunk without one goes
 * through as it is, without a copy.
 * @internal
 */
export const onlyItems = <A, S extends { readonly _tag: string }, E, R>(
  stream: Stream.Stream<SseClient.Item<A> | S, E, R>
): Stream.Stream<SseClient.Item<A>, E, R> =>
  Stream.mapChunks(stream, (chunk): Chunk.Chunk<SseClient.Item<A>> => {
    for (const item of chunk) {
      if (!isItem(item)) return Chunk.filter(chunk, (i): i is SseClient.Item<A> => isItem(i))
    }
    return chunk as Chunk.Chunk<SseClient.Item<A>>
  })

const isItem = <A>(item: { readonly _tag: string }): item is SseClient.Item<A> =>
  item._tag === "Message" || item._tag === "Reset"
