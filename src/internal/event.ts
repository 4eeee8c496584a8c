/** @internal */
import * as Either from "effect/Either"
import type * as Event from "../Event.js"

const EPOCH_RE = /^[0-9a-z]{1,32}$/
const CURSOR_RE = /^([0-9a-z]{1,32})-(0|[1-9][0-9]{0,15})$/
const TOPIC_RE = /^[A-Za-z0-9._~/-]{1,200}$/
const PATTERN_RE = /^[A-Za-z0-9._~/-]{0,200}\*?$/
const TYPE_RE = /^[A-Za-z0-9._~:/-]{1,128}$/

/** @internal */
export const RESERVED_TYPES: ReadonlySet<string> = new Set(["reset", "end"])

/**
 * An event as a log creates it. Beyond the public fields it has a private slot for its encoded SSE
 * frame, so the fan-out, every writer and every replay share one encoding without a side table
 * (a `WeakMap` keyed by every live event costs more than the encoding itself, mostly in GC).
 * The slot is invisible to `JSON.stringify`, spreads and structural equality.
 * @internal
 */
export class EventRecord implements Event.Event {
  #frame: Uint8Array | undefined = undefined
  #size = -1
  constructor(
    readonly id: Event.EventId,
    readonly topic: string,
    readonly type: string,
    readonly data: string,
    readonly time: number
  ) {}

  /** The cached frame, encoding it with `encode` on first use. */
  static frame(event: EventRecord, encode: (event: Event.Event) => Uint8Array): Uint8Array {
    let frame = event.#frame
    if (frame === undefined) frame = event.#frame = encode(event)
    return frame
  }

  /** The cached byte length of the frame, computed with `measure` on first use. */
  static size(event: EventRecord, measure: (event: Event.Event) => number): number {
    let size = event.#size
    if (size < 0) size = event.#size = event.#frame === undefined ? measure(event) : event.#frame.byteLength
    return size
  }
}

/** @internal */
export const makeEvent = (fields: Event.Event): Event.Event =>
  new EventRecord(fields.id, fields.topic, fields.type, fields.data, fields.time)

/** @internal */
export const formatId = (id: Event.EventId): string => `${id.epoch}-${id.seq}`

/** @internal */
export const parseId = (input: string): Either.Either<Event.EventId, Event.InvalidCursor> => {
  const match = CURSOR_RE.exec(input)
  if (match === null) {
    return Either.left({ _tag: "InvalidCursor", input: input.slice(0, 64), message: describeBadCursor(input) })
  }
  const seq = Number(match[2])
  if (!Number.isSafeInteger(seq)) {
    return Either.left({ _tag: "InvalidCursor", input: input.slice(0, 64), message: "sequence number is too large" })
  }
  return Either.right({ epoch: match[1]!, seq })
}

const describeBadCursor = (input: string): string => {
  if (input.length === 0) return "cursor is empty"
  if (input.length > 64) return "cursor is longer than 64 characters"
  return "cursor must look like <epoch>-<seq> with a lowercase alphanumeric epoch and a decimal sequence"
}

/** @internal */
export const isEpoch = (s: string): boolean => EPOCH_RE.test(s)

/** @internal */
export const validateTopic = (topic: unknown): string | undefined => {
  if (typeof topic !== "string") return "topic must be a string"
  if (!TOPIC_RE.test(topic)) {
    return "topic must be 1-200 characters of A-Z a-z 0-9 . _ ~ / -"
  }
  return undefined
}

/** @internal */
export const validatePattern = (pattern: unknown): string | undefined => {
  if (typeof pattern !== "string") return "topic must be a string"
  if (pattern.length === 0 || !PATTERN_RE.test(pattern)) {
    return "topic must be 1-200 characters of A-Z a-z 0-9 . _ ~ / -, optionally ending in * for a prefix match"
  }
  return undefined
}

/** @internal */
export const validateType = (type: unknown): string | undefined => {
  if (typeof type !== "string") return "type must be a string"
  if (!TYPE_RE.test(type)) return "type must be 1-128 characters of A-Z a-z 0-9 . _ ~ : / -"
  if (RESERVED_TYPES.has(type)) return `type "${type}" is reserved by the SSE protocol`
  return undefined
}

// A lone surrogate: with the `u` flag a well-formed pair is one code point, never in Cs. (Not
// `String.prototype.isWellFormed`: the library builds against lib ES2022, which Node 20 users have.)
const LONE_SURROGATE = /\p{Cs}/u

/** @internal */
export const validateData = (data: unknown): string | undefined => {
  if (typeof data !== "string") return "data must be a string"
  if (LONE_SURROGATE.test(data)) return "data contains a lone surrogate and cannot be encoded as UTF-8"
  return undefined
}

// C0 controls, DEL and C1 controls
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/

/** @internal */
export const validateIdempotencyKey = (key: unknown): string | undefined => {
  if (typeof key !== "string") return "idempotency key must be a string"
  if (key.length === 0) return "idempotency key is empty"
  if (key.length > 200 || Buffer.byteLength(key, "utf8") > 200) return "idempotency key is longer than 200 bytes"
  if (CONTROL_RE.test(key)) return "idempotency key contains a control character"
  if (LONE_SURROGATE.test(key)) return "idempotency key contains a lone surrogate"
  return undefined
}

/**
 * Compiles topic patterns into one predicate. Exact topics go to a Set, prefix patterns to a list;
 * matching is linear in the number of patterns, never in regex backtracking.
 * @internal
 */
export const compileTopics = (patterns: ReadonlyArray<string>): ((topic: string) => boolean) | undefined => {
  if (patterns.length === 0) return undefined
  const exact = new Set<string>()
  const prefixes: Array<string> = []
  for (const p of patterns) {
    if (p.endsWith("*")) {
      const prefix = p.slice(0, -1)
      if (prefix.length === 0) return undefined
      prefixes.push(prefix)
    } else {
      exact.add(p)
    }
  }
  if (prefixes.length === 0) {
    if (exact.size === 1) {
      const only = exact.values().next().value as string
      return (topic) => topic === only
    }
    return (topic) => exact.has(topic)
  }
  return (topic) => {
    if (exact.has(topic)) return true
    for (let i = 0; i < prefixes.length; i++) {
      if (topic.startsWith(prefixes[i]!)) return true
    }
    return false
  }
}
