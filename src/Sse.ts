/**
 * The Server-Sent Events encoder. Every byte sluice writes to an SSE stream comes from here.
 *
 * Guarantees: output never contains a bare `\r` and never starts with a BOM (a U+FEFF inside `data`
 * is sent as is: parsers only strip one at the very start of a stream); `data` containing CR, LF or CRLF is split
 * into one `data:` line per line, so it round-trips through a spec parser (CR and CRLF arrive as LF);
 * `id` and `event` values never contain control characters, so a value can never forge a field.
 *
 * @since 0.1.0
 */
import type * as Event from "./Event.js"
import * as internal from "./internal/sse.js"

/**
 * Fields of one SSE frame.
 *
 * @since 0.1.0
 * @category models
 */
export interface Frame {
  readonly id?: string | undefined
  /** Omitted on the wire when `message` or undefined. */
  readonly event?: string | undefined
  readonly data: string
}

/**
 * Encodes a frame as text, terminated by the blank line that dispatches it.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode: (frame: Frame) => string = internal.frameText

/**
 * The UTF-8 encoded frame of a log event (`id: <epoch>-<seq>`, `event:` unless `message`, `data:`
 * lines). The frame is encoded once per event object and cached for every connection; this returns
 * a copy of it, so a caller may do anything with the bytes.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeEvent = (event: Event.Event): Uint8Array => Uint8Array.from(internal.frameOf(event))

/**
 * A comment block (`: text`), ignored by clients; used for the opening bytes and heartbeats.
 *
 * @since 0.1.0
 * @category encoding
 */
export const comment: (text: string) => string = internal.comment

/**
 * A `retry:` line that sets the client's reconnection delay in milliseconds.
 *
 * @since 0.1.0
 * @category encoding
 */
export const retry: (millis: number) => string = internal.retry
