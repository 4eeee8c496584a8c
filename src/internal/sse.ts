/** @internal */
import type * as Event from "../Event.js"
import { formatId } from "./event.js"

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
export const stripControl = (s: string): string => s.replace(CONTROL, "")

/** @internal */
export const encodeEventText = (event: Event.Event): string =>
  frameText({ id: formatId(event.id), event: event.type, data: event.data })

const frames = new WeakMap<Event.Event, Uint8Array>()

/**
 * The SSE frame of an event, encoded once and shared by every subscriber and every replay that
 * sees the same event object.
 * @internal
 */
export const frameOf = (event: Event.Event): Uint8Array => {
  let frame = frames.get(event)
  if (frame === undefined) {
    frame = Buffer.from(encodeEventText(event), "utf8")
    frames.set(event, frame)
  }
  return frame
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

/** @internal */
export const concatFrames = (chunks: ReadonlyArray<Uint8Array>, totalBytes: number): Uint8Array =>
  chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks as Array<Uint8Array>, totalBytes)
