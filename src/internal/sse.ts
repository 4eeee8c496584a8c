/** @internal */
import type * as Event from "../Event.js"
import type * as EventBus from "../EventBus.js"
import { EventRecord, formatId } from "./event.js"

const LINE_BREAK = /\r\n|\r|\n/
const CONTROL = /[\x00-\x1f\x7f]/g

/** @internal */
export const dataLines = (data: string): string => {
  if (data.indexOf("\n") === -1 && data.indexOf("\r") === -1) return `data: ${data}\n`
  const lines = data.split(LINE_BREAK)
  let out = ""
  for (let i = 0; i < lines.length; i++) out += `data: ${lines[i]}\n`
  return out
}

/** @internal */
export const frameText = (fields: {
  readonly id?: string | undefined
  readonly event?: string | undefined
  readonly data: string
}): string => {
  let out = ""
  if (fields.id !== undefined) out += `id: ${stripControl(fields.id)}\n`
  if (fields.event !== undefined && fields.event !== "message") out += `event: ${stripControl(fields.event)}\n`
  return out + dataLines(fields.data) + "\n"
}

/** @internal */
export const stripControl = (s: string): string => hasControl(s) ? s.replace(CONTROL, "") : s

/** A plain scan: ids and types are short and almost never hold a control character. */
const hasControl = (s: string): boolean => {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c === 0x7f) return true
  }
  return false
}

/** @internal */
export const encodeEventText = (event: Event.Event): string =>
  frameText({ id: formatId(event.id), event: event.type, data: event.data })

const encodeFrame = (event: Event.Event): Uint8Array => Buffer.from(encodeEventText(event), "utf8")

const frames = new WeakMap<Event.Event, Uint8Array>()

/**
 * The SSE frame of an event, encoded once and shared by every subscriber and every replay that
 * sees the same event. Events made by a log (`Event.make`) carry the frame in a private slot;
 * any other event object is cached in a side table.
 * @internal
 */
export const frameOf = (event: Event.Event): Uint8Array => {
  if (event instanceof EventRecord) return EventRecord.frame(event, encodeFrame)
  let frame = frames.get(event)
  if (frame === undefined) {
    frame = encodeFrame(event)
    frames.set(event, frame)
  }
  return frame
}

/**
 * The byte length of an event's frame without encoding it: the bus accounts buffers in frame bytes,
 * and in-process subscribers never need the bytes themselves. Equal to `frameOf(event).byteLength`.
 * @internal
 */
export const frameSizeOf = (event: Event.Event): number =>
  event instanceof EventRecord ? EventRecord.size(event, measureFrame) : frameOf(event).byteLength

const measureFrame = (event: Event.Event): number => {
  const id = event.id
  const type = event.type
  const dataBytes = utf8Length(event.data, false)
  const epochBytes = epochLength(id.epoch)
  const seq = id.seq
  const typeBytes = type === "message" ? 0 : utf8Length(type, true)
  // Multi-line data, control characters in the id or type, or an unusual seq change the text:
  // measure the real encoding.
  if (dataBytes < 0 || epochBytes < 0 || typeBytes < 0 || !Number.isSafeInteger(seq) || seq < 0) {
    return Buffer.byteLength(encodeEventText(event), "utf8")
  }
  // `id: <epoch>-<seq>\n` [`event: <type>\n`] `data: <data>\n` `\n`
  return 4 + epochBytes + 1 + decimalDigits(seq) + 1 + (type === "message" ? 0 : 8 + typeBytes) + 6 + dataBytes + 2
}

/**
 * The UTF-8 length of `s` (lone surrogates count as U+FFFD, as `Buffer` encodes them), or -1 when
 * it holds a CR or LF, or with `controls` any control character: one plain pass, no allocation.
 */
const utf8Length = (s: string, controls: boolean): number => {
  let bytes = 0
  const n = s.length
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) {
      if (c < 0x20 || c === 0x7f) {
        if (c === 10 || c === 13 || controls) return -1
      }
      bytes += 1
    } else if (c < 0x800) {
      bytes += 2
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4
      i++
    } else {
      bytes += 3
    }
  }
  return bytes
}

/** A log's events share one epoch string: measure it once. */
let lastEpoch = ""
let lastEpochBytes = 0
const epochLength = (epoch: string): number => {
  if (epoch !== lastEpoch) {
    lastEpochBytes = utf8Length(epoch, true)
    lastEpoch = epoch
  }
  return lastEpochBytes
}

const decimalDigits = (n: number): number => {
  let digits = 1
  while (n >= 10) {
    n = Math.floor(n / 10)
    digits++
  }
  return digits
}

/** @internal */
export const comment = (text: string): string => {
  if (text.length === 0) return ":\n\n"
  let out = ""
  for (const line of text.split(LINE_BREAK)) out += `: ${stripControl(line)}\n`
  return out + "\n"
}

/** @internal */
export const retry = (millis: number): string => `retry: ${Math.max(0, Math.floor(millis))}\n`

/** The heartbeat: an empty comment. Shared by every connection; never mutated. @internal */
export const HEARTBEAT: Uint8Array = Buffer.from(":\n\n", "latin1")

/** The first bytes of every stream: its jittered `retry:` and a comment. @internal */
export const opening = (retryMillis: number): string => `${retry(retryMillis)}${comment("sluice")}`

/** The `event: end` frame, with no id (the client's cursor stays on its last event). @internal */
export const endFrame = (reason: string): Uint8Array =>
  Buffer.from(frameText({ event: "end", data: JSON.stringify({ reason }) }), "utf8")

/** The `event: reset` frame of a resume outcome (empty unless it is a reset). @internal */
export const resetFrame = (outcome: EventBus.ResumeOutcome): string =>
  outcome._tag === "Reset"
    ? frameText({
      id: formatId(outcome.head),
      event: "reset",
      data: JSON.stringify({ reason: outcome.reason, head: formatId(outcome.head), message: outcome.message })
    })
    : ""
