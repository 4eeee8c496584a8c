/**
 * One SSE stream, whatever carries it: the bytes and the timings both transports share, and the
 * state machine that decides every end.
 *
 * ```
 * Opening ──head written──► Backlog ──opening, reset and replay written──► Live
 *    │                         │                                             │
 *    └────────── an end is decided (overflow, stall, lifetime, shutdown…) ───┘
 *                                        ▼
 *                                     Ending ──what it holds and `event: end` handed over──► Done
 *                                        │                                                   │
 *                                        └──── writeDeadline passed, or the peer left ───────┴──► Destroyed
 * ```
 *
 * Every change of state goes through {@link Session.to}. The bus decides `overflow`, a buffer's
 * `stalled` and `shutdown` of the bus; the session decides `lifetime`, a transport's `stalled` and
 * the route's `shutdown`, and when a stream that cannot finish is destroyed. Time is the route's
 * `Clock`, handed in as `now`.
 * @internal
 */
import type * as Event from "../Event.js"
import type * as EventBus from "../EventBus.js"
import type { SubscriberHandle } from "./eventBus.js"
import type { ReplayPage } from "./replay.js"
import { endFrame, frameOf, HEARTBEAT } from "./sse.js"

/** @internal */
export type State = "opening" | "backlog" | "live" | "ending" | "done" | "destroyed"

/** What a session needs from the route's central writer. @internal */
export interface WriterPort {
  readonly heartbeatMillis: number
  readonly writeDeadlineMillis: number
  readonly stallTimeoutMillis: number
  readonly now: () => number
  readonly markDirty: (session: Session) => void
  readonly encode: (batch: ReadonlyArray<Event.Event>) => Uint8Array
  /** Reads the next replay page; `onPage` may run at once (a memory log) or later. */
  readonly fetchPage: (session: Session, onPage: (page: ReplayPage | undefined | "failed") => void) => void
  readonly remove: (session: Session) => void
}

const EMPTY = new Uint8Array(0)

/** Replayed frames are joined into writes of at most this many bytes. */
const REPLAY_CHUNK = 16 * 1024

/** @internal */
export abstract class Session {
  state: State = "opening"
  dirty = false
  /** The replay page being written (frames shared with the log's events, never copied). */
  private page: ReplayPage | undefined = undefined
  private pageIndex = 0
  /** A replay page is being read from the log. */
  private fetching = false
  private lastWrite: number
  private lastProgress: number
  private endingAt: number | undefined = undefined
  private released = false
  /** Events handed to the transport, replay and live (counted per page and per flush, not per event). */
  written = 0
  /** Runs once when the session is released, after its subscriber closed (the connection's span ends here). */
  private onRelease: ((session: Session) => void) | undefined = undefined

  constructor(
    readonly writer: WriterPort,
    readonly sub: SubscriberHandle,
    /** The opening bytes (retry, comment) and the reset frame, written first. */
    private backlog: Uint8Array | undefined,
    readonly expiresAt: number | undefined
  ) {
    this.lastWrite = this.lastProgress = writer.now()
  }

  /** Writes bytes; false when the transport wants no more until it drains. */
  protected abstract write(bytes: Uint8Array): boolean
  /** The transport holds more than it wants (a socket that stopped draining). */
  protected abstract get blocked(): boolean
  /** The transport can take no more bytes at all (destroyed or ended). */
  protected abstract get closed(): boolean
  /** Everything handed over has left (the response finished). */
  protected abstract get finished(): boolean
  /** Writes the final bytes and ends the response. */
  protected abstract complete(final: Uint8Array): void
  /** Destroys the transport (a reset on a socket). */
  protected abstract abort(): void
  /** Drops the transport's listeners. */
  protected abstract detach(): void

  /** The single transition function: every change of state, and what it does, is here. */
  protected to(next: Exclude<State, "opening">): void {
    const from = this.state
    if (from === next || from === "destroyed" || (from === "done" && next !== "destroyed")) return
    this.state = next
    const now = this.writer.now()
    switch (next) {
      case "backlog":
        this.lastWrite = this.lastProgress = now
        return this.writer.markDirty(this)
      case "ending":
        this.endingAt = now
        return this.writer.markDirty(this)
      case "done": {
        this.endingAt ??= now
        const reason = this.sub.endReason
        return this.complete(reason === undefined || reason === "closed" ? EMPTY : endFrame(reason))
      }
      case "destroyed":
        this.abort()
        return this.release()
      case "live":
        return
    }
  }

  /** The transport wrote the response head: start writing. */
  start(): void {
    if (this.state === "opening") this.to("backlog")
  }

  /** The drain deadline passed: destroy the transport and release everything. */
  destroy(): void {
    this.to("destroyed")
  }

  /** An end decided by the route (lifetime, a stalled transport, shutdown). */
  end(reason: EventBus.EndReason): void {
    this.sub.end(reason)
  }

  /** The transport made room again. */
  protected drained(): void {
    this.lastProgress = this.writer.now()
    this.writer.markDirty(this)
  }

  /** The transport closed under the session (the peer left): release everything. */
  protected lost(): void {
    if (this.state === "done") return this.release()
    this.to("destroyed")
  }

  /** Writes what it can: the backlog, the replay, then live events; then the end once all is out. */
  flush(now: number): void {
    const state = this.state
    if (state === "opening" || state === "done" || state === "destroyed" || this.fetching) return
    if (this.closed || this.blocked) return
    const backlog = this.backlog
    if (backlog !== undefined) {
      this.backlog = undefined
      if (!this.wrote(backlog, now)) return
    }
    if (!this.writeReplay(now)) return this.noticeEnd()
    if (state === "backlog") this.to("live")
    if (this.sub.buffered > 0) {
      const batch = this.sub.take()
      this.written += batch.length
      this.wrote(this.writer.encode(batch), now)
    }
    if (this.sub.endReason !== undefined) this.to("done")
  }

  /** Periodic upkeep on the route's clock: lifetime, a stalled transport, heartbeat, write deadline. */
  tick(now: number): void {
    switch (this.state) {
      case "opening":
      case "backlog":
      case "live":
        if (this.sub.endReason !== undefined) return this.noticeEnd()
        if (this.expiresAt !== undefined && now >= this.expiresAt) return this.end("lifetime")
        if (this.blocked && now - this.lastProgress >= this.writer.stallTimeoutMillis) return this.end("stalled")
        if (this.state === "live" && now - this.lastWrite >= this.writer.heartbeatMillis && !this.blocked) {
          this.write(HEARTBEAT)
          this.lastWrite = now
        }
        return
      case "ending":
      case "done":
        if (!this.finished && now - (this.endingAt ?? now) >= this.writer.writeDeadlineMillis) this.to("destroyed")
        return
      case "destroyed":
        return
    }
  }

  /** Runs `f` once the session is released (at once if it already is). */
  whenReleased(f: (session: Session) => void): void {
    if (this.released) f(this)
    else this.onRelease = f
  }

  /** Releases the session once: off the writer, its page back to the budget, its subscriber closed. */
  release(): void {
    if (this.released) return
    this.released = true
    this.releasePage()
    this.detach()
    this.sub.close()
    this.writer.remove(this)
    const onRelease = this.onRelease
    this.onRelease = undefined
    if (onRelease !== undefined) onRelease(this)
  }

  private noticeEnd(): void {
    if (this.sub.endReason !== undefined && (this.state === "backlog" || this.state === "live")) this.to("ending")
  }

  private wrote(bytes: Uint8Array, now: number): boolean {
    const writable = this.write(bytes)
    this.lastWrite = this.lastProgress = now
    return writable
  }

  /**
   * The replay, page by page at the transport's pace, in writes of up to {@link REPLAY_CHUNK} bytes
   * joined from the events' shared frames. True once the replay is done; until then nothing live is
   * written (it follows the replay).
   */
  private writeReplay(now: number): boolean {
    for (;;) {
      if (this.sub.endReason !== undefined && (this.page !== undefined || this.sub.replaying !== undefined)) {
        // Ended mid-replay: stop at this frame boundary. What is buffered live would follow a gap,
        // so it goes too; the client resumes from the last event it got.
        this.releasePage()
        this.sub.abandonReplay()
        return true
      }
      const page = this.page
      if (page !== undefined) {
        const events = page.events
        let writable = true
        const from = this.pageIndex
        while (writable && this.pageIndex < events.length && this.sub.endReason === undefined) {
          writable = this.write(this.replayChunk(events))
        }
        this.written += this.pageIndex - from
        this.lastWrite = this.lastProgress = now
        if (this.pageIndex < events.length) {
          if (this.sub.endReason !== undefined) continue // ended mid-page: stop here (above)
          return false
        }
        this.sub.delivered(events.length)
        this.releasePage()
        if (!writable) return false
      }
      const replay = this.sub.replaying
      if (replay === undefined) return true
      if (!this.fetch()) return false // the page arrives later and marks the session dirty
    }
  }

  /**
   * The page's next frames from `pageIndex`, joined up to {@link REPLAY_CHUNK} bytes: one write per
   * chunk, not one per event (a lone frame is written as it is, shared with the log's event).
   */
  private replayChunk(events: ReadonlyArray<Event.Event>): Uint8Array {
    const first = frameOf(events[this.pageIndex++]!)
    if (this.pageIndex >= events.length || first.byteLength >= REPLAY_CHUNK) return first
    const frames = [first]
    let size = first.byteLength
    while (this.pageIndex < events.length && size < REPLAY_CHUNK) {
      const frame = frameOf(events[this.pageIndex]!)
      if (size + frame.byteLength > REPLAY_CHUNK) break
      frames.push(frame)
      size += frame.byteLength
      this.pageIndex++
    }
    return frames.length === 1 ? first : Buffer.concat(frames, size)
  }

  /** Asks for the next replay page; true when it arrived at once. */
  private fetch(): boolean {
    this.fetching = true
    let inline = true
    let arrived = false
    this.writer.fetchPage(this, (next) => {
      this.fetching = false
      arrived = true
      if (this.released) {
        if (next !== undefined && next !== "failed") next.release()
        return
      }
      if (next === "failed") this.sub.replayFailed()
      else if (next !== undefined) this.page = next
      if (!inline) this.writer.markDirty(this)
    })
    inline = false
    return arrived
  }

  private releasePage(): void {
    const page = this.page
    this.page = undefined
    this.pageIndex = 0
    page?.release()
  }
}
