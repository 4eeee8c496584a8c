/**
 * The portable transport, for servers that are not `@effect/platform-node` (a web handler): the
 * same session, written by the same central writer, into a bounded queue that the response's body
 * `Stream` drains. Heartbeat, lifetime, stall (the body stopped pulling), write deadline and the
 * end frame behave as on Node; the deadline ends the body, since there is no socket to reset.
 * @internal
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { SubscriberHandle } from "./eventBus.js"
import { Session, type WriterPort } from "./session.js"

/** What the queue holds before the writer waits for the body to pull (like a socket's buffer). */
const HIGH_WATER_MARK = 64 * 1024

/** @internal */
export class PortableSession extends Session {
  private queue: Array<Uint8Array> = []
  private queuedBytes = 0
  private completed = false
  private aborted = false
  private waiting: ((effect: Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<never>>) => void) | undefined =
    undefined

  constructor(writer: WriterPort, sub: SubscriberHandle, backlog: Uint8Array, expiresAt: number | undefined) {
    super(writer, sub, backlog, expiresAt)
  }

  protected write(bytes: Uint8Array): boolean {
    if (this.completed || this.aborted) return false
    this.queue.push(bytes)
    this.queuedBytes += bytes.byteLength
    this.wake()
    return this.queuedBytes < HIGH_WATER_MARK
  }

  protected get blocked(): boolean {
    return this.queuedBytes >= HIGH_WATER_MARK
  }

  protected get closed(): boolean {
    return this.completed || this.aborted
  }

  protected get finished(): boolean {
    return this.aborted || (this.completed && this.queue.length === 0)
  }

  protected complete(final: Uint8Array): void {
    if (final.byteLength > 0) this.write(final)
    this.completed = true
    this.wake()
  }

  protected abort(): void {
    this.aborted = true
    this.queue = []
    this.queuedBytes = 0
    this.wake()
  }

  protected detach(): void {
    this.abort()
  }

  /** Hands the body everything queued, waiting for bytes; fails with `None` at the end. */
  readonly pull: Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<never>> = Effect.suspend(() => {
    if (this.state === "opening") this.start() // the body is being read: the head is out
    const ready = this.take()
    if (ready !== undefined) return ready
    return Effect.async<Chunk.Chunk<Uint8Array>, Option.Option<never>>((resume) => {
      const again = this.take()
      if (again !== undefined) return resume(again)
      this.waiting = resume
      return Effect.sync(() => {
        this.waiting = undefined
      })
    })
  })

  private take(): Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<never>> | undefined {
    if (this.queue.length > 0) {
      const chunk = Chunk.unsafeFromArray(this.queue)
      this.queue = []
      this.queuedBytes = 0
      this.drained()
      return Effect.succeed(chunk)
    }
    if (this.completed || this.aborted) return Effect.fail(Option.none())
    return undefined
  }

  private wake(): void {
    const resume = this.waiting
    if (resume === undefined) return
    const ready = this.take()
    if (ready === undefined) return
    this.waiting = undefined
    resume(ready)
  }
}

/** The body of a portable session; ending or interrupting it releases the session. @internal */
export const portableBody = (session: PortableSession): Stream.Stream<Uint8Array> =>
  Stream.repeatEffectChunkOption(session.pull).pipe(Stream.ensuring(Effect.sync(() => session.release())))
