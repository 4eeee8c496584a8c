/** @internal */
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as AST from "effect/SchemaAST"
import type * as Event from "../Event.js"
import type * as Topic from "../Topic.js"
import { compileTopics, validatePattern } from "./event.js"

/** @internal */
export const TypeId: unique symbol = Symbol.for("sluice/Topic") as never

/** The per-type JSON codecs of a family, built once by `make`. */
interface Codec {
  readonly encode: (payload: unknown) => Either.Either<string, ParseResult.ParseError>
  readonly decode: (data: string) => Either.Either<unknown, ParseResult.ParseError>
}

/** @internal */
export interface TopicImpl<P extends string, E extends Topic.EventSchemas> extends Topic.Topic<P, E> {
  readonly codecs: ReadonlyMap<string, Codec>
  /** Why the pattern is not a valid pattern, or `undefined`. */
  readonly invalid: string | undefined
  /** Whether a concrete topic belongs to the family. */
  readonly matches: (topic: string) => boolean
  readonly labels: Record<Topic.UndecodableReason, ReadonlyArray<MetricLabel.MetricLabel>>
}

/** @internal */
export const undecodableTotal = Metric.counter("sluice_topic_undecodable_total", {
  description: "Events of a typed topic that did not decode, by topic pattern and reason"
})

const REASONS: ReadonlyArray<Topic.UndecodableReason> = ["UnknownType", "InvalidPayload"]

/** The literal `_tag` of a tagged schema's values, if it has one. */
const literalTag = (schema: Schema.Schema.Any): string | undefined => {
  const tag = AST.getPropertySignatures(AST.typeAST(schema.ast)).find((p) => p.name === "_tag")
  return tag !== undefined && AST.isLiteral(tag.type) && typeof tag.type.literal === "string" ? tag.type.literal : undefined
}

/** The record of payload schemas by event type: as given, or one entry per tagged member. */
const toRecord = (events: Topic.EventSchemas | Schema.Schema.Any): Topic.EventSchemas => {
  if (!Schema.isSchema(events)) return events
  const members = AST.isUnion(events.ast) ? (events as Schema.Union<ReadonlyArray<Schema.Schema.AnyNoContext>>).members : [events]
  const record: Record<string, Schema.Schema<any, any, never>> = {}
  for (const member of members) {
    const tag = literalTag(member)
    if (tag !== undefined) record[tag] = member as Schema.Schema<any, any, never>
  }
  return record
}

/** The `_tag` of a value, as the type of a tagged payload published without one. */
export const tagOf = (data: unknown): string =>
  typeof data === "object" && data !== null && typeof (data as { _tag?: unknown })._tag === "string"
    ? (data as { _tag: string })._tag
    : "(no type)"

/** @internal */
export const make = <P extends string, E extends Topic.EventSchemas>(
  pattern: P,
  given: E | Schema.Schema.Any
): Topic.Topic<P, E> => {
  const events = toRecord(given) as E
  const codecs = new Map<string, Codec>()
  for (const type of Object.keys(events)) {
    const json = Schema.parseJson(events[type]!)
    codecs.set(type, { encode: Schema.encodeEither(json), decode: Schema.decodeUnknownEither(json) })
  }
  const invalid = validatePattern(pattern)
  const match = invalid === undefined ? compileTopics([pattern]) : undefined
  const labels = Object.fromEntries(
    REASONS.map((reason) => [reason, [MetricLabel.make("topic", pattern), MetricLabel.make("reason", reason)]])
  ) as unknown as TopicImpl<P, E>["labels"]
  const impl: TopicImpl<P, E> = {
    [TypeId]: TypeId,
    pattern,
    events,
    codecs,
    invalid,
    matches: invalid !== undefined ? () => false : match === undefined ? () => true : match,
    labels
  }
  return impl
}

/** @internal */
export const impl = <P extends string, E extends Topic.EventSchemas>(topic: Topic.Topic<P, E>): TopicImpl<P, E> =>
  topic as TopicImpl<P, E>

/** The concrete topic of a publish, or why it is refused. */
export const resolveTopic = (
  topic: TopicImpl<string, Topic.EventSchemas>,
  given: string | undefined
): Either.Either<string, string> => {
  if (topic.invalid !== undefined) return Either.left(`the topic pattern ${JSON.stringify(topic.pattern)}: ${topic.invalid}`)
  const concrete = given ?? (topic.pattern.endsWith("*") ? undefined : topic.pattern)
  if (concrete === undefined) return Either.left(`a topic is required for the pattern ${topic.pattern}`)
  if (!topic.matches(concrete)) {
    return Either.left(`${JSON.stringify(concrete.slice(0, 80))} does not match the pattern ${topic.pattern}`)
  }
  return Either.right(concrete)
}

/** Encodes one payload to JSON text, or says why it cannot be. */
export const encodePayload = (
  topic: TopicImpl<string, Topic.EventSchemas>,
  type: string,
  data: unknown
): Either.Either<string, { readonly reason: "InvalidType" | "InvalidData"; readonly message: string; readonly cause?: unknown }> => {
  const codec = topic.codecs.get(type)
  if (codec === undefined) {
    return Either.left({ reason: "InvalidType", message: `${JSON.stringify(type)} is not an event type of ${topic.pattern}` })
  }
  return Either.mapLeft(codec.encode(data), (cause) => ({
    reason: "InvalidData",
    message: `${type} payload does not encode: ${ParseResult.TreeFormatter.formatErrorSync(cause)}`,
    cause
  }))
}

/** What went wrong decoding a frame, before it becomes an `Undecodable`. */
export interface Failure {
  readonly reason: Topic.UndecodableReason
  readonly message: string
  readonly cause?: ParseResult.ParseError | undefined
}

/** Decodes one frame's `type` and `data` (total: never throws). */
export const decodePayload = (
  topic: TopicImpl<string, Topic.EventSchemas>,
  type: string,
  data: string
): Either.Either<unknown, Failure> => {
  const codec = topic.codecs.get(type)
  if (codec === undefined) {
    return Either.left({ reason: "UnknownType", message: `${JSON.stringify(type.slice(0, 80))} is not an event type of ${topic.pattern}` })
  }
  return Either.mapLeft(codec.decode(data), (cause) => ({
    reason: "InvalidPayload",
    message: `${type} payload does not decode: ${ParseResult.TreeFormatter.formatErrorSync(cause)}`,
    cause
  }))
}

/** Counts an undecodable event of the family. */
export const countUndecodable = (topic: TopicImpl<string, Topic.EventSchemas>, reason: Topic.UndecodableReason): void =>
  undecodableTotal.unsafeUpdate(1, topic.labels[reason])

/** Creates the family's zero series, so an alert on them has data from the first scrape. */
export const touchMetrics = (topic: TopicImpl<string, Topic.EventSchemas>): void => {
  for (const reason of REASONS) undecodableTotal.unsafeUpdate(0, topic.labels[reason])
}

/**
 * The event an HTTP publish body describes for a typed family: `data` is the payload's encoded
 * form as a JSON value; it is decoded with the type's schema and encoded again (so what is stored
 * is exactly what `Topic.publish` would store); or why it is refused, appending nothing.
 * @internal
 */
export const checkPublishBody = (
  topic: TopicImpl<string, Topic.EventSchemas>,
  body: { readonly topic: string; readonly type: string | undefined; readonly data: unknown }
): Either.Either<Event.EventInput, { readonly error: string; readonly message: string }> => {
  const concrete = resolveTopic(topic, body.topic)
  if (Either.isLeft(concrete)) return Either.left({ error: "invalid_event", message: concrete.left })
  const type = body.type ?? tagOf(body.data)
  const decoded = decodePayload(topic, type, JSON.stringify(body.data))
  if (Either.isLeft(decoded)) {
    return Either.left({
      error: decoded.left.reason === "UnknownType" ? "invalid_event" : "invalid_payload",
      message: decoded.left.message
    })
  }
  const encoded = encodePayload(topic, type, decoded.right)
  if (Either.isLeft(encoded)) return Either.left({ error: "invalid_payload", message: encoded.left.message })
  return Either.right({ topic: concrete.right, type, data: encoded.right })
}
