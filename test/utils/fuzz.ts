/**
 * A seeded generator of hostile publishes — topics, types and data laced with CR, LF, CRLF, NUL, BOM,
 * U+2028/U+2029/U+0085, lone surrogates, DEL and C1 controls, field-looking text and very long
 * lines — each with the outcome the documentation promises (docs/http.md, docs/delivery.md): either
 * the one event a spec parser must see, or the typed reason it is refused. The oracle is written
 * from the documented rules, not from the code it checks.
 */
import { seeded } from "./random.js"

/** Why the bus refuses a publish (`PublishError.reason`). */
export type Refusal = "InvalidTopic" | "InvalidType" | "InvalidData" | "TooLarge"

/** One generated publish and what must come of it. */
export interface FuzzCase {
  readonly topic: string
  readonly type: string | undefined
  readonly data: string
  readonly expect:
    | {
      readonly _tag: "Accepted"
      /** The `event` field a spec parser reports (`undefined` for `message`). */
      readonly event: string | undefined
      /** The type an SSE client reports (`message` when the frame has no `event:`). */
      readonly type: string
      /** The data a spec parser reports: CR and CRLF normalised to LF. */
      readonly data: string
    }
    | { readonly _tag: "Refused"; readonly reason: Refusal }
}

// The documented rules (docs/http.md "GET /events"; docs/delivery.md publish errors).
const TOPIC = /^[A-Za-z0-9._~/-]{1,200}$/
const TYPE = /^[A-Za-z0-9._~:/-]{1,128}$/
const RESERVED = new Set(["reset", "end"])
const LONE_SURROGATE = /\p{Cs}/u

/** The documented outcome of a publish. */
export const outcome = (topic: string, type: string | undefined, data: string, maxEventBytes: number): FuzzCase["expect"] => {
  if (!TOPIC.test(topic)) return { _tag: "Refused", reason: "InvalidTopic" }
  if (type !== undefined && (!TYPE.test(type) || RESERVED.has(type))) return { _tag: "Refused", reason: "InvalidType" }
  if (LONE_SURROGATE.test(data)) return { _tag: "Refused", reason: "InvalidData" }
  if (Buffer.byteLength(data, "utf8") > maxEventBytes) return { _tag: "Refused", reason: "TooLarge" }
  return {
    _tag: "Accepted",
    event: type === undefined || type === "message" ? undefined : type,
    type: type ?? "message",
    data: data.replace(/\r\n|\r/g, "\n")
  }
}

const TOPIC_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~/-"
const TYPE_CHARS = TOPIC_CHARS + ":"
const WORD_CHARS = "abcdefghijklmnopqrstuvwxyz ABC0123456789{}\"'<>&=;,.!?#%\\\t"

/** Pieces that have broken SSE servers and parsers: line breaks, controls, surrogates, fields. */
const HOSTILE: ReadonlyArray<string> = [
  "\r",
  "\n",
  "\r\n",
  "\n\r",
  "\r\r",
  "\n\n",
  "\0",
  "\uFEFF",
  "\u2028",
  "\u2029",
  "\u0085",
  "\x7f",
  "\x1b[31m",
  "\v",
  "\f",
  "\uD800",
  "\uDBFF",
  "\uDC00",
  "\uDFFF",
  "\uD83D\uDCA5",
  "é",
  "中",
  "id: 999999",
  "id:",
  "id",
  "event: admin",
  "event:reset",
  "data: forged",
  "retry: 0",
  "retry: 1",
  ":",
  ": comment",
  " ",
  "  "
]

/** A seeded stream of hostile publishes; the same seed gives the same cases. */
export const fuzzCases = (seed: number, options: { readonly maxEventBytes: number; readonly longLineRate?: number }) => {
  const rng = seeded(seed)
  const pick = <A>(items: ReadonlyArray<A>): A => items[rng.int(items.length)]!
  const chars = (alphabet: string, n: number) => {
    let s = ""
    for (let i = 0; i < n; i++) s += alphabet[rng.int(alphabet.length)]
    return s
  }
  /** A C1 control (U+0080..U+009F) or DEL. */
  const c1 = () => String.fromCharCode(rng.next() < 0.1 ? 0x7f : 0x80 + rng.int(32))
  /** `valid` with a hostile piece spliced in somewhere. */
  const spoiled = (valid: string) => {
    const at = rng.int(valid.length + 1)
    return valid.slice(0, at) + (rng.next() < 0.2 ? c1() : pick(HOSTILE)) + valid.slice(at)
  }

  const topic = (): string => {
    const r = rng.next()
    if (r < 0.9) return chars(TOPIC_CHARS, 1 + rng.int(r < 0.005 ? 200 : 24))
    if (r < 0.92) return pick(["", "*", "a*", chars(TOPIC_CHARS, 201)])
    return spoiled(chars(TOPIC_CHARS, rng.int(12)))
  }
  const type = (): string | undefined => {
    const r = rng.next()
    if (r < 0.4) return undefined
    if (r < 0.45) return "message"
    if (r < 0.9) return chars(TYPE_CHARS, 1 + rng.int(r < 0.455 ? 128 : 16))
    if (r < 0.93) return pick(["", "reset", "end", chars(TYPE_CHARS, 129)])
    return spoiled(chars(TYPE_CHARS, rng.int(12)))
  }
  const longLine = () => {
    // Up to 1.5 × the event limit: some are refused as too large.
    const n = 1 + rng.int(Math.floor(options.maxEventBytes * 1.5))
    return rng.next() < 0.5 ? "x".repeat(n) : chars(WORD_CHARS, Math.min(n, 4096)).repeat(Math.max(1, Math.floor(n / 4096)))
  }
  const data = (): string => {
    if (rng.next() < (options.longLineRate ?? 0.005)) {
      return rng.next() < 0.5 ? longLine() : `${pick(HOSTILE)}${longLine()}\r\n${longLine().slice(0, 1024)}${pick(HOSTILE)}`
    }
    const pieces = rng.int(8)
    let s = ""
    for (let i = 0; i < pieces; i++) {
      const r = rng.next()
      // Lone surrogates are rarer than the rest, so most payloads go through.
      const piece = r < 0.4 ? chars(WORD_CHARS, rng.int(12)) : r < 0.5 ? c1() : pick(HOSTILE)
      s += /[\uD800-\uDBFF]$/.test(piece) || /^[\uDC00-\uDFFF]/.test(piece) ? (rng.next() < 0.3 ? piece : "") : piece
    }
    return s
  }

  return {
    seed,
    next: (): FuzzCase => {
      const t = topic()
      const ty = type()
      const d = data()
      return { topic: t, type: ty, data: d, expect: outcome(t, ty, d, options.maxEventBytes) }
    }
  }
}
