/**
 * Bytes of one SSE connection to client items: UTF-8 decoding, the WHATWG parsing model
 * (`eventsource-parser`), the cursor (`Last-Event-ID`), duplicate dropping and sluice's `reset` and
 * `end` frames. No Effect, no I/O: the connection loop feeds it chunks.
 * @internal
 */
import * as Either from "effect/Either"
import { createParser, type EventSourceMessage, type EventSourceParser } from "eventsource-parser"
import type * as SseClient from "../SseClient.js"
import { parseId } from "./event.js"

/**
 * What survives a reconnect: the cursor, the last id accepted (duplicates are judged against it)
 * and the server's reconnection time.
 * @internal
 */
export interface Cursor {
  /** The `Last-Event-ID` to send; `""` sends none. */
  id: string
  /** The last sluice id accepted (updated in place); an id not after it within the same epoch is a duplicate. */
  last: { readonly epoch: string; seq: number } | undefined
  /** The server's `retry:` in milliseconds, once it sent one. */
  retry: number | undefined
}

/** @internal */
export const makeCursor = (lastEventId: string | undefined): Cursor => ({
  id: lastEventId ?? "",
  last: lastEventId === undefined ? undefined : Either.getOrUndefined(parseId(lastEventId)),
  retry: undefined
})

/** Marks, in a decoded chunk, that an event grew past the size limit: nothing after it is valid. @internal */
export const TOO_LARGE: unique symbol = Symbol.for("sluice/SseClient/TooLarge")

/** @internal */
export type Decoded = SseClient.Message | SseClient.Reset | typeof TOO_LARGE

/**
 * The parser of one connection. `feed` returns what the bytes completed; an event still open when
 * the connection ends is never dispatched (and its id never recorded), as the spec requires.
 * @internal
 */
export class Decoder {
  /** The `event: end` reason, once the server announced its end. */
  endReason: string | undefined = undefined
  /** Whether an event exceeded the size limit (the decoder then accepts nothing more). */
  tooLarge = false
  /** Messages and resets handed out (after duplicates were dropped). */
  accepted = 0
  /** Events dropped as duplicates. */
  dropped = 0

  private readonly text = new TextDecoder("utf-8", { ignoreBOM: true })
  private readonly parser: EventSourceParser
  private out: Array<Decoded> = []
  /** The id of the block being dispatched is not after the cursor: drop its event. */
  private stale = false

  constructor(readonly cursor: Cursor, maxEventSize: number) {
    this.parser = createParser({
      maxBufferSize: maxEventSize,
      onId: (id) => this.onId(id),
      onEvent: (event) => this.onEvent(event),
      onRetry: (millis) => {
        cursor.retry = millis
      },
      onError: (error) => {
        if (error.type === "max-buffer-size-exceeded") this.tooLarge = true
      }
    })
  }

  /** Decodes one chunk of the body. */
  feed(bytes: Uint8Array): Array<Decoded> {
    if (this.tooLarge) return []
    this.out = []
    // `ignoreBOM` keeps a BOM in the text: the parser strips exactly one at the start of the stream.
    this.parser.feed(this.text.decode(bytes, { stream: true }))
    if (this.tooLarge) this.out.push(TOO_LARGE)
    return this.out
  }

  private onId(id: string): void {
    this.stale = false
    if (id === "") {
      this.cursor.id = ""
      return
    }
    const last = this.cursor.last
    if (last !== undefined) {
      // The usual case, without a regex or an allocation: the same epoch as the last id.
      const seq = seqAfter(id, last.epoch)
      if (seq >= 0) {
        if (seq <= last.seq) {
          this.stale = true
          return
        }
        last.seq = seq
        this.cursor.id = id
        return
      }
    }
    const parsed = parseId(id)
    if (Either.isRight(parsed)) {
      if (last !== undefined && last.epoch === parsed.right.epoch && parsed.right.seq <= last.seq) {
        this.stale = true
        return
      }
      this.cursor.last = parsed.right
    }
    this.cursor.id = id
  }

  private onEvent(event: EventSourceMessage): void {
    const type = event.event ?? "message"
    if (type === "reset" && this.onReset(event)) return
    if (type === "end" && event.id === undefined) {
      const reason = reasonOf(event.data)
      if (reason !== undefined) {
        this.endReason = reason
        return
      }
    }
    if (event.id !== undefined && this.stale) {
      this.stale = false
      this.dropped++
      return
    }
    this.accepted++
    this.out.push({ _tag: "Message", id: this.cursor.id, type, data: event.data })
  }

  /** sluice's reset moves the cursor to the head, even backwards (`future`) or to another epoch. */
  private onReset(event: EventSourceMessage): boolean {
    const body = jsonObject(event.data)
    if (body === undefined || typeof body.reason !== "string" || typeof body.head !== "string") return false
    const head = event.id ?? body.head
    this.stale = false
    this.cursor.id = head
    this.cursor.last = Either.getOrUndefined(parseId(head))
    this.accepted++
    this.out.push({
      _tag: "Reset",
      reason: body.reason,
      head,
      message: typeof body.message === "string" ? body.message : undefined
    })
    return true
  }
}

/**
 * The sequence number of `id` when it is `<epoch>-<seq>` for this (valid) `epoch`, with `seq` as
 * `parseId` accepts it (no leading zero, at most 16 digits, a safe integer); -1 otherwise.
 */
const seqAfter = (id: string, epoch: string): number => {
  const start = epoch.length + 1
  const digits = id.length - start
  if (digits < 1 || digits > 16 || id.charCodeAt(epoch.length) !== 45 /* - */ || !id.startsWith(epoch)) return -1
  if (digits > 1 && id.charCodeAt(start) === 48 /* 0 */) return -1
  let seq = 0
  for (let i = start; i < id.length; i++) {
    const digit = id.charCodeAt(i) - 48
    if (digit < 0 || digit > 9) return -1
    seq = seq * 10 + digit
  }
  return Number.isSafeInteger(seq) ? seq : -1
}

const reasonOf = (data: string): string | undefined => {
  const body = jsonObject(data)
  return body !== undefined && typeof body.reason === "string" ? body.reason : undefined
}

const jsonObject = (data: string): Record<string, unknown> | undefined => {
  if (data.length === 0 || data.charCodeAt(0) !== 123 /* { */ || data.length > 4096) return undefined
  try {
    const value: unknown = JSON.parse(data)
    return typeof value === "object" && value !== null ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}
