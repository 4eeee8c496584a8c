/**
 * The central writer of one SSE route: every open session of both transports, a dirty list flushed
 * once per macrotask (`setImmediate`), so every frame published in that turn goes out in one write
 * per session, and a periodic `tick` on the route's clock for heartbeats, lifetimes, stalls and
 * write deadlines. No fiber runs per session.
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Event from "../Event.js"
import type { ReplayPage } from "./replay.js"
import type { Session, WriterPort } from "./session.js"
import { frameOf } from "./sse.js"

/** A session whose step threw is destroyed; the writer goes on with the others. */
const destroyed = (session: Session): void => {
  try {
    session.destroy()
  } catch {
    session.release()
  }
}

/** @internal */
export class Writer implements WriterPort {
  readonly sessions = new Set<Session>()
  private dirty: Array<Session> = []
  private scheduled = false
  private emptyWaiters: Array<() => void> = []

  constructor(
    readonly heartbeatMillis: number,
    readonly writeDeadlineMillis: number,
    readonly stallTimeoutMillis: number,
    /** The route's clock, in milliseconds. */
    readonly now: () => number,
    readonly fetchPage: (session: Session, onPage: (page: ReplayPage | undefined | "failed") => void) => void
  ) {}

  private closed = false

  /** Adds a session; once the route has shut down (see {@link close}) it is destroyed at once. */
  add(session: Session): void {
    this.sessions.add(session)
    if (this.closed) session.destroy()
  }

  /** The route shut down: no tick runs any more, so a session that arrives now could not be ended. */
  close(): void {
    this.closed = true
  }

  readonly remove = (session: Session): void => {
    if (!this.sessions.delete(session) || this.sessions.size > 0) return
    const waiters = this.emptyWaiters
    this.emptyWaiters = []
    for (const wake of waiters) wake()
  }

  /** Completes once no session is open (a latch, not a poll). */
  readonly whenEmpty: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (this.sessions.size === 0) return resume(Effect.void)
    const wake = () => resume(Effect.void)
    this.emptyWaiters.push(wake)
    return Effect.sync(() => {
      this.emptyWaiters = this.emptyWaiters.filter((w) => w !== wake)
    })
  })

  readonly markDirty = (session: Session): void => {
    if (session.dirty) return
    session.dirty = true
    this.dirty.push(session)
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(this.flush)
    }
  }

  readonly flush = (): void => {
    this.scheduled = false
    const dirty = this.dirty
    this.dirty = []
    const now = this.now()
    for (let i = 0; i < dirty.length; i++) {
      const session = dirty[i]!
      session.dirty = false
      try {
        session.flush(now)
      } catch {
        destroyed(session)
      }
    }
    this.clearCache()
  }

  /** Periodic upkeep; O(sessions). */
  tick(now: number): void {
    for (const session of this.sessions) {
      try {
        session.tick(now)
      } catch {
        destroyed(session)
      }
    }
  }

  /**
   * Bytes of the last batch encoded in this flush. Subscribers of the same topic set usually hold
   * the very same read-only batch array (the fan-out shares it), and otherwise often the same run of
   * sequence numbers: either way they write one shared buffer, so coalescing costs one concatenation
   * per flush, not one per session.
   */
  private cacheBatch: ReadonlyArray<Event.Event> | undefined = undefined
  private cacheFirst = -1
  private cacheLast = -1
  private cacheBytes: Uint8Array | undefined = undefined

  private clearCache(): void {
    this.cacheBytes = undefined
    this.cacheBatch = undefined
    this.cacheFirst = this.cacheLast = -1
  }

  readonly encode = (batch: ReadonlyArray<Event.Event>): Uint8Array => {
    if (batch === this.cacheBatch) return this.cacheBytes!
    const n = batch.length
    const first = batch[0]!.id.seq
    const last = batch[n - 1]!.id.seq
    const contiguous = last - first + 1 === n
    if (contiguous && first === this.cacheFirst && last === this.cacheLast) return this.cacheBytes!
    let bytes: Uint8Array
    if (n === 1) {
      bytes = frameOf(batch[0]!)
    } else {
      let total = 0
      const frames: Array<Uint8Array> = new Array(n)
      for (let i = 0; i < n; i++) {
        const frame = frameOf(batch[i]!)
        frames[i] = frame
        total += frame.byteLength
      }
      bytes = Buffer.concat(frames, total)
    }
    this.cacheBatch = batch
    this.cacheBytes = bytes
    this.cacheFirst = contiguous ? first : -1
    this.cacheLast = contiguous ? last : -1
    return bytes
  }
}
