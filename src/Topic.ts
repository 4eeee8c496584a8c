/**
 * Typed topics: a topic family declared once with Schema — its topic pattern and its event types
 * with their payload schemas — gives typed publish (encoded with Schema, checked at compile time),
 * typed subscribe and stream (decoded, values typed by event type), and the same decoding for
 * clients ({@link decode}).
 *
 * On the wire an event of type `K` is an ordinary sluice event: `type` is `K`, `data` is the JSON
 * text of the payload encoded with its schema. A payload that does not decode is never silent and
 * never ends the subscription by default: it arrives as an {@link Undecodable} value (or fails the
 * stream, with `onUndecodable: "fail"`) and is counted in `sluice_topic_undecodable_total`.
 *
 * @example
 * ```ts
 * import { Effect, Schema, Stream } from "effect"
 * import { Topic } from "sluice"
 *
 * const Orders = Topic.make("orders/*", {
 *   OrderPlaced: Schema.Struct({ id: Schema.String, total: Schema.Number }),
 *   OrderShipped: Schema.Struct({ id: Schema.String, carrier: Schema.String })
 * })
 *
 * const program = Effect.gen(function*() {
 *   const orders = yield* Topic.stream(Orders)
 *   yield* Effect.fork(Stream.runForEach(orders, (m) =>
 *     m._tag === "Undecodable" ? Effect.logWarning(m.message)
 *     : m.type === "OrderPlaced" ? Effect.log(m.data.total)
 *     : Effect.log(m.data.carrier)))
 *   yield* Topic.publish(Orders, { topic: "orders/1", type: "OrderPlaced", data: { id: "1", total: 42 } })
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as ParseResult from "effect/ParseResult"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Event from "./Event.js"
import * as EventBus from "./EventBus.js"
import * as internal from "./internal/topic.js"

/**
 * The payload schemas of a family, by event type. Each schema's encoded side must be JSON.
 *
 * @since 0.1.0
 * @category models
 */
export type EventSchemas = Readonly<Record<string, Schema.Schema<any, any, never>>>

/**
 * A topic family: a topic pattern (`orders`, or `orders/*` for a family of topics) and its event
 * types with their payload schemas. Build one with {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Topic<P extends string, E extends EventSchemas> {
  readonly [internal.TypeId]: typeof internal.TypeId
  readonly pattern: P
  readonly events: E
}

/**
 * Any topic family.
 *
 * @since 0.1.0
 * @category models
 */
export type Any = Topic<string, EventSchemas>

/**
 * The event types of a family.
 *
 * @since 0.1.0
 * @category models
 */
export type Types<T extends Any> = keyof T["events"] & string

/**
 * A decoded payload: its event type and its value, one member per event type.
 *
 * @since 0.1.0
 * @category models
 */
export type Payload<T extends Any> = {
  readonly [K in Types<T>]: { readonly type: K; readonly data: Schema.Schema.Type<T["events"][K]> }
}[Types<T>]

/**
 * A decoded event of a family: its type and payload, plus where it came from.
 *
 * @since 0.1.0
 * @category models
 */
export type Message<T extends Any> = {
  readonly [K in Types<T>]: {
    readonly _tag: "Message"
    readonly type: K
    readonly data: Schema.Schema.Type<T["events"][K]>
    readonly id: Event.EventId
    readonly topic: string
    readonly time: number
  }
}[Types<T>]

/**
 * What a typed subscription emits by default: a decoded message, or an event that did not decode.
 *
 * @since 0.1.0
 * @category models
 */
export type Received<T extends Any> = Message<T> | Undecodable

/**
 * A typed publish: the event type and its payload (checked against the schema at compile time).
 * `topic` is required when the pattern ends in `*`, and defaults to the pattern otherwise. `type`
 * may be left out when the payload is a tagged value whose `_tag` is the type.
 *
 * @since 0.1.0
 * @category models
 */
export type PublishInput<T extends Any> = {
  readonly [K in Types<T>]:
    & { readonly data: Schema.Schema.Type<T["events"][K]> }
    & (Schema.Schema.Type<T["events"][K]> extends { readonly _tag: K } ? { readonly type?: K | undefined }
      : { readonly type: K })
    & (T["pattern"] extends `${string}*` ? { readonly topic: string } : { readonly topic?: T["pattern"] | undefined })
}[Types<T>]

/**
 * Why an event did not decode: its type is not one of the family's, or its data is not valid JSON
 * of the type's schema.
 *
 * @since 0.1.0
 * @category models
 */
export type UndecodableReason = "UnknownType" | "InvalidPayload"

/**
 * An event of a typed topic that did not decode. Emitted as a value by default; the failure of a
 * stream opened with `onUndecodable: "fail"`.
 *
 * @since 0.1.0
 * @category errors
 */
export class Undecodable extends Data.TaggedError("Undecodable")<{
  readonly reason: UndecodableReason
  readonly message: string
  /** The event's type and data as received. */
  readonly type: string
  readonly data: string
  /** The log event, when it came from a bus (a client frame has only `id`). */
  readonly event?: Event.Event | undefined
  readonly cause?: ParseResult.ParseError | undefined
}> {}

/**
 * What a typed subscription does with an event that does not decode: emit it as an
 * {@link Undecodable} value (`"emit"`, the default) or fail the stream with it (`"fail"`).
 *
 * @since 0.1.0
 * @category models
 */
export type OnUndecodable = "emit" | "fail"

/**
 * Options of a typed subscription: the bus's, with `topics` defaulting to the family's pattern.
 *
 * @since 0.1.0
 * @category models
 */
export interface SubscribeOptions<M extends OnUndecodable = "emit"> extends EventBus.SubscribeOptions {
  readonly onUndecodable?: M | undefined
}

/**
 * The values of a typed stream under an {@link OnUndecodable} policy.
 *
 * @since 0.1.0
 * @category models
 */
export type Output<T extends Any, M extends OnUndecodable> = M extends "fail" ? Message<T> : Received<T>

/**
 * A typed subscription, valid for the lifetime of its scope.
 *
 * @since 0.1.0
 * @category models
 */
export interface Subscription<T extends Any, M extends OnUndecodable = "emit"> {
  readonly outcome: EventBus.ResumeOutcome
  /** Replay, then live events, decoded. Consume it once. */
  readonly events: Stream.Stream<Output<T, M>, M extends "fail" ? Undecodable : never>
  /** Completes with the reason once the subscription has been ended. */
  readonly ended: Effect.Effect<EventBus.EndReason>
  /** Ends the subscription now (what it holds is still emitted). */
  readonly end: (reason: EventBus.EndReason) => Effect.Effect<void>
}

/**
 * The literal `_tag` of a schema's values (`Schema.TaggedStruct`, `Schema.TaggedClass`, a struct
 * with a literal `_tag`), or `never`.
 *
 * @since 0.1.0
 * @category models
 */
export type TagOf<S> = Schema.Schema.Type<S> extends { readonly _tag: infer T extends string } ? T : never

/**
 * The record of payload schemas that tagged schemas stand for: each under its `_tag`.
 *
 * @since 0.1.0
 * @category models
 */
export type FromTagged<Members extends ReadonlyArray<Schema.Schema.AnyNoContext>> = {
  readonly [M in Members[number] as TagOf<M>]: M
}

/**
 * Declares a topic family: a topic pattern and its event types, either as a record of payload
 * schemas by event type, or as a union of tagged schemas (each member's `_tag` is its event type
 * and its payload is the whole tagged value, `_tag` included). Nothing is checked here that could
 * throw: an invalid pattern refuses every publish (`InvalidTopic`) and subscription
 * (`InvalidTopic`) with a typed error, and a union member without a literal `_tag` is no event type.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: {
  <const P extends string, Members extends ReadonlyArray<Schema.Schema.AnyNoContext>>(
    pattern: P,
    events: Schema.Union<Members>
  ): Topic<P, FromTagged<Members>>
  <const P extends string, S extends Schema.Schema.AnyNoContext>(pattern: P, events: S): Topic<P, FromTagged<[S]>>
  <const P extends string, const E extends EventSchemas>(pattern: P, events: E): Topic<P, E>
} = internal.make as never

const toPublishError = (index: number, batch: number) => (e: { reason: "InvalidTopic" | "InvalidType" | "InvalidData"; message: string; cause?: unknown }) =>
  new EventBus.PublishError({ ...e, message: batch > 1 ? `${e.message} (event ${index})` : e.message, index })

/** Encodes a batch, or the error refusing it (nothing is appended then). */
const encodeAll = <T extends Any>(topic: T, inputs: ReadonlyArray<PublishInput<T>>) => {
  const impl = internal.impl(topic)
  const encoded: Array<Event.EventInput> = []
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i]! as { readonly topic?: string | undefined; readonly type?: string | undefined; readonly data: unknown }
    const fail = toPublishError(i, inputs.length)
    const concrete = internal.resolveTopic(impl, input.topic)
    if (Either.isLeft(concrete)) return Either.left(fail({ reason: "InvalidTopic", message: concrete.left }))
    const type = input.type ?? internal.tagOf(input.data)
    const data = internal.encodePayload(impl, type, input.data)
    if (Either.isLeft(data)) return Either.left(fail(data.left))
    encoded.push({ topic: concrete.right, type, data: data.right })
  }
  return Either.right(encoded)
}

/**
 * Encodes every input with its schema, then publishes them as one batch (all or none). A payload
 * that does not encode, a topic outside the pattern or an unknown type is a `PublishError`
 * (`InvalidData`, `InvalidTopic`, `InvalidType`) and nothing is appended.
 *
 * @since 0.1.0
 * @category publishing
 */
export const publishAll = <T extends Any>(
  topic: T,
  inputs: Iterable<PublishInput<T>>
): Effect.Effect<ReadonlyArray<Event.Event>, EventBus.PublishError, EventBus.EventBus> =>
  Effect.flatMap(EventBus.EventBus, (bus) =>
    Effect.suspend(() => {
      const encoded = encodeAll(topic, Array.from(inputs))
      return Either.isLeft(encoded) ? Effect.fail(encoded.left) : bus.publishAll(encoded.right)
    }))

/**
 * Encodes one event with its schema and publishes it; see {@link publishAll}.
 *
 * @since 0.1.0
 * @category publishing
 */
export const publish = <T extends Any>(
  topic: T,
  input: PublishInput<T>
): Effect.Effect<Event.Event, EventBus.PublishError, EventBus.EventBus> =>
  Effect.map(publishAll(topic, [input]), (events) => events[0]!)

/**
 * Decodes one frame's `type` and `data` against a family (total, never throws): what a client of
 * the SSE route uses on each `MessageEvent` (`{ type: e.type, data: e.data }`). Does not count.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = <T extends Any>(
  topic: T,
  frame: { readonly type: string; readonly data: string }
): Either.Either<Payload<T>, Undecodable> =>
  Either.mapBoth(internal.decodePayload(internal.impl(topic), frame.type, frame.data), {
    onLeft: (failure) => new Undecodable({ ...failure, type: frame.type, data: frame.data }),
    onRight: (data) => ({ type: frame.type, data }) as Payload<T>
  })

/**
 * Decodes a bus event against a family, counting it when it does not decode.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeEvent = <T extends Any>(topic: T, event: Event.Event): Received<T> => {
  const impl = internal.impl(topic)
  const decoded = internal.decodePayload(impl, event.type, event.data)
  if (Either.isLeft(decoded)) {
    internal.countUndecodable(impl, decoded.left.reason)
    return new Undecodable({ ...decoded.left, type: event.type, data: event.data, event })
  }
  return {
    _tag: "Message",
    type: event.type,
    data: decoded.right,
    id: event.id,
    topic: event.topic,
    time: event.time
  } as Message<T>
}

const decodeStream = <T extends Any, M extends OnUndecodable>(
  topic: T,
  events: Stream.Stream<Event.Event>,
  onUndecodable: M | undefined
): Subscription<T, M>["events"] => {
  const decoded = Stream.mapChunks(events, Chunk.map((e) => decodeEvent(topic, e)))
  if (onUndecodable !== "fail") return decoded as Subscription<T, M>["events"]
  return Stream.mapEffect(decoded, (m) => m._tag === "Undecodable" ? Effect.fail(m) : Effect.succeed(m)) as never
}

const busOptions = <M extends OnUndecodable>(topic: Any, options: SubscribeOptions<M> | undefined): EventBus.SubscribeOptions => {
  internal.touchMetrics(internal.impl(topic))
  return { ...options, topics: options?.topics ?? [topic.pattern] }
}

/**
 * Subscribes to a family (topics default to its pattern): registered before this returns, its
 * `events` decoded. Resumes after `after` like `EventBus.subscribe`.
 *
 * @since 0.1.0
 * @category subscribing
 */
export const subscribe = <T extends Any, M extends OnUndecodable = "emit">(
  topic: T,
  options?: SubscribeOptions<M>
): Effect.Effect<Subscription<T, M>, EventBus.SubscribeError, EventBus.EventBus | Scope.Scope> =>
  Effect.flatMap(EventBus.EventBus, (bus) =>
    Effect.map(bus.subscribe(busOptions(topic, options)), (sub) => ({
      outcome: sub.outcome,
      events: decodeStream<T, M>(topic, sub.events, options?.onUndecodable),
      ended: sub.ended,
      end: sub.end
    })))

/**
 * A decoded stream of a family, registered before this returns (fork the consumer, then publish:
 * nothing is lost). It lives until the scope closes or the stream stops, like `EventBus.stream`.
 *
 * @since 0.1.0
 * @category subscribing
 */
export const stream = <T extends Any, M extends OnUndecodable = "emit">(
  topic: T,
  options?: SubscribeOptions<M>
): Effect.Effect<Subscription<T, M>["events"], EventBus.SubscribeError, EventBus.EventBus | Scope.Scope> =>
  Effect.flatMap(EventBus.EventBus, (bus) =>
    Effect.map(bus.stream(busOptions(topic, options)), (events) => decodeStream<T, M>(topic, events, options?.onUndecodable)))
