/** @internal */
import type * as Http from "node:http"
import type * as Net from "node:net"
import type * as Event from "../Event.js"
import type * as EventBus from "../EventBus.js"
import type { Subscriber } from "./eventBus.js"
import { resetSocket } from "./nodeEdge.js"
import type { ReplayPage } from "./replay.js"
import { frameOf } from "./sse.js"

const HEARTBEAT = Buffer.from(":\n\n", "latin1")

/** @internal */
export const endFrame = (reason: string): Uint8Array =>
  Buffer.from(`event: end\ndata: {"reason":${JSON.stringify(reason)}}\n\n`, "utf8")

/**
 * One SSE response on the Node fast path. While `live`, the central {@link Writer} writes this
 * connection's frames straight to the raw response; the connection's fiber stays parked until the
 * end, so delivering an event costs no fiber wake.
 * @internal
 */
export class Connection {
  live = false
  dirty = false
  backlogIndex = 0
  detached = false
  /** The replay page being written (frames shared with the log's events, never copied). */
  page: ReplayPage | undefined = undefined
  pageIndex = 0
  /** A replay page is being read from the log. */
  fetching = false
  lastWrite: number
  lastProgress: number
  endingAt: number | undefined = undefined
  closeSocketOnFinish = false
  /** Resumes the connection's fiber with the final chunk once the subscription ended and flushed. */
  onDone: ((final: Uint8Array) => void) | undefined = undefined
  readonly socket: Net.Socket | null
  private readonly drainListener: () => void

  constructor(
    readonly writer: Writer,
    readonly sub: Subscriber,
    readonly res: Http.ServerResponse,
    readonly expiresAt: number | undefined,
    now: number,
    /** Bytes to write before live events: the opening, a reset, the replay (in about 64 KiB chunks). */
    public backlog: ReadonlyArray<Uint8Array>
  ) {
    this.lastWrite = now
    this.lastProgress = now
    this.socket = res.socket
    this.drainListener = () => {
      this.lastProgress = Date.now()
      if (this.live) writer.markDirty(this)
    }
    res.on("drain", this.drainListener)
    // The socket's 'close' always fires, whatever the peer did: release here, not only when the
    // platform interrupts the request (it never does for a socket an upgrade request handed over).
    this.socket?.once("close", this.closeListener)
  }

  /** Called once the socket closed; set by the route to release the request. */
  onClose: (() => void) | undefined = undefined

  private readonly closeListener = (): void => {
    const onClose = this.onClose
    this.onClose = undefined
    this.sub.close()
    this.detach()
    if (onClose !== undefined) onClose()
  }

  detach(): void {
    if (this.detached) return
    this.detached = true
    this.live = false
    this.onDone = undefined
    if (this.sub.notify === this.notify) this.sub.notify = undefined
    this.res.removeListener("drain", this.drainListener)
    this.socket?.removeListener("close", this.closeListener)
    this.releasePage()
    this.writer.connections.delete(this)
  }

  releasePage(): void {
    const page = this.page
    this.page = undefined
    this.pageIndex = 0
    page?.release()
  }

  readonly notify = (): void => {
    this.writer.markDirty(this)
  }
}

/**
 * The central writer of one SSE route: a set of connections and a dirty list flushed once per
 * macrotask (`setImmediate`), so every frame published in that tick goes out in one `write` per
 * connection. A periodic `tick` writes heartbeats, applies max lifetimes, detects sockets that stopped
 * draining, and destroys responses that could not finish within the write deadline.
 * @internal
 */
export class Writer {
  readonly connections = new Set<Connection>()
  private dirty: Array<Connection> = []
  private scheduled = false

  constructor(
    readonly options: {
      readonly heartbeatMillis: number
      readonly writeDeadlineMillis: number
      readonly stallTimeoutMillis: number
    },
    /** Reads a connection's next replay page (asynchronously) and hands it to `onPage`. */
    private readonly fetchPage: (conn: Connection, onPage: (page: ReplayPage | undefined | "failed") => void) => void
  ) {}

  attach(
    sub: Subscriber,
    res: Http.ServerResponse,
    expiresAt: number | undefined,
    backlog: ReadonlyArray<Uint8Array>
  ): Connection {
    const conn = new Connection(this, sub, res, expiresAt, Date.now(), backlog)
    sub.encodes = true
    this.connections.add(conn)
    return conn
  }

  /**
   * Starts writing a connection: its backlog first, at the socket's pace, then live events. From now
   * on the fan-out marks it dirty; no fiber runs per event.
   */
  goLive(conn: Connection, onDone: (final: Uint8Array) => void): void {
    if (conn.detached) return
    conn.onDone = onDone
    conn.live = true
    conn.sub.notify = conn.notify
    this.drain(conn, Date.now())
    this.clearCache()
  }

  readonly markDirty = (conn: Connection): void => {
    if (conn.dirty || conn.detached) return
    conn.dirty = true
    this.dirty.push(conn)
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(this.flush)
    }
  }

  readonly flush = (): void => {
    this.scheduled = false
    const dirty = this.dirty
    this.dirty = []
    const now = Date.now()
    for (let i = 0; i < dirty.length; i++) {
      const conn = dirty[i]!
      conn.dirty = false
      if (conn.live) this.drain(conn, now)
    }
    this.clearCache()
  }

  private clearCache(): void {
    this.cacheBytes = undefined
    this.cacheBatch = undefined
    this.cacheFirst = this.cacheLast = -1
  }

  /**
   * Bytes of the last batch encoded in this flush. Subscribers of the same topic set usually hold
   * the very same read-only batch array (the fan-out shares it), and otherwise often the same run of
   * sequence numbers: either way they write one shared buffer, so coalescing costs one concatenation
   * per tick, not one per connection.
   */
  private cacheBatch: ReadonlyArray<Event.Event> | undefined = undefined
  private cacheFirst = -1
  private cacheLast = -1
  private cacheBytes: Uint8Array | undefined = undefined

  private encode(batch: ReadonlyArray<Event.Event>): Uint8Array {
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

  private drain(conn: Connection, now: number): void {
    const res = conn.res
    const sub = conn.sub
    if (res.writableNeedDrain || res.destroyed || res.writableEnded || conn.fetching) return
    if (!this.writeBacklog(conn, now) || !this.writeReplay(conn, now)) return
    if (sub.buffer.length > 0) {
      res.write(this.encode(sub.take()))
      conn.lastWrite = now
      conn.lastProgress = now
    }
    if (sub.endReason !== undefined) this.finish(conn, sub.endReason)
  }

  /** The opening (and reset); true once all of it is written. */
  private writeBacklog(conn: Connection, now: number): boolean {
    const backlog = conn.backlog
    if (backlog.length === 0) return true
    while (conn.backlogIndex < backlog.length) {
      const writable = conn.res.write(backlog[conn.backlogIndex++]!)
      conn.lastWrite = conn.lastProgress = now
      if (!writable) break
    }
    if (conn.backlogIndex < backlog.length) return false // 'drain' marks it dirty again
    conn.backlog = []
    return true
  }

  /**
   * The replay, page by page at the socket's pace: each frame is the event's shared frame, written
   * as is. True once the replay is done; until then nothing live is written (it follows the replay).
   */
  private writeReplay(conn: Connection, now: number): boolean {
    const res = conn.res
    for (;;) {
      const page = conn.page
      if (page !== undefined) {
        const events = page.events
        res.cork()
        let writable = true
        while (writable && conn.pageIndex < events.length) writable = res.write(frameOf(events[conn.pageIndex++]!))
        res.uncork()
        conn.lastWrite = conn.lastProgress = now
        if (conn.pageIndex < events.length) return false
        conn.sub.hub.countDelivered(events.length)
        conn.sub.drains++
        conn.releasePage()
        if (!writable) return false
      }
      const replay = conn.sub.replay
      if (replay === undefined) return true
      if (replay.done) {
        conn.sub.replay = undefined
        return true
      }
      if (!this.fetch(conn)) return false // the page arrives later and marks the connection dirty
    }
  }

  /** Asks for the next replay page; true when it arrived at once (a memory log). */
  private fetch(conn: Connection): boolean {
    conn.fetching = true
    let inline = true
    let arrived = false
    this.fetchPage(conn, (next) => {
      conn.fetching = false
      arrived = true
      if (conn.detached) {
        if (next !== undefined && next !== "failed") next.release()
        return
      }
      if (next === "failed") conn.sub.replayFailed()
      else if (next === undefined) conn.sub.replay = undefined
      else conn.page = next
      if (!inline) this.markDirty(conn)
    })
    inline = false
    return arrived
  }

  private finish(conn: Connection, reason: EventBus.EndReason): void {
    const onDone = conn.onDone
    if (onDone === undefined) return
    conn.onDone = undefined
    conn.live = false
    if (conn.sub.notify === conn.notify) conn.sub.notify = undefined
    if (conn.endingAt === undefined) conn.endingAt = Date.now()
    if (conn.closeSocketOnFinish) {
      const socket = conn.socket
      conn.res.once("finish", () => socket?.destroySoon())
    }
    onDone(reason === "closed" ? new Uint8Array(0) : endFrame(reason))
  }

  /** Periodic upkeep; `now` in milliseconds. O(connections), no fiber per connection. */
  tick(now: number): void {
    const { heartbeatMillis, stallTimeoutMillis, writeDeadlineMillis } = this.options
    for (const conn of this.connections) {
      const sub = conn.sub
      const res = conn.res
      if (res.destroyed) continue
      if (sub.endReason === undefined && !res.writableEnded) {
        if (conn.expiresAt !== undefined && now >= conn.expiresAt) {
          sub.end("lifetime")
        } else if (res.writableNeedDrain && now - conn.lastProgress >= stallTimeoutMillis) {
          // A socket that stopped draining with nothing buffered in the bus (e.g. half-open, idle).
          sub.end("stalled")
        } else if (conn.live && now - conn.lastWrite >= heartbeatMillis && !res.writableNeedDrain) {
          res.write(HEARTBEAT)
          conn.lastWrite = now
        }
      }
      if (sub.endReason !== undefined) {
        if (conn.endingAt === undefined) conn.endingAt = now
        else if (now - conn.endingAt >= writeDeadlineMillis && !res.writableFinished) {
          // The peer stopped reading: the server's writer waits on 'drain' and cannot be interrupted
          // from the stream, so reset the socket (the kernel drops its send queue at once); 'close'
          // then releases the request.
          resetSocket(res)
          conn.detach()
        }
      }
    }
  }
}
