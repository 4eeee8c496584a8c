/**
 * The Node transport: a session written straight to the raw `ServerResponse` by the central writer.
 * The response body is an empty `Readable` that only ends the response, so the request's fiber waits
 * on one promise and no `Stream` runs per connection. The session is bound to the socket's
 * `'close'` as well as to the request's scope.
 * @internal
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Http from "node:http"
import type * as Net from "node:net"
import { Readable } from "node:stream"
import type { SubscriberHandle } from "./eventBus.js"
import { resetSocket } from "./nodeEdge.js"
import { Session, type WriterPort } from "./session.js"

/** @internal */
export const SSE_HEADERS = {
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no"
} as const

/** @internal */
export const CLOSE_DELIMITED_HEADERS = { ...SSE_HEADERS, connection: "close" } as const

/** @internal */
export class NodeSession extends Session {
  /** Close the socket once the response finished (shutdown: the client reconnects elsewhere). */
  closeSocketOnFinish = false
  private readonly socket: Net.Socket | null
  /** Ends the response body; set when the body is piped. */
  onComplete: ((final: Uint8Array) => void) | undefined = undefined
  /** Runs once when the session is released (destroys the body, so the request's fiber ends). */
  onDetach: (() => void) | undefined = undefined

  constructor(
    writer: WriterPort,
    sub: SubscriberHandle,
    readonly res: Http.ServerResponse,
    backlog: Uint8Array,
    expiresAt: number | undefined
  ) {
    super(writer, sub, backlog, expiresAt)
    this.socket = res.socket
    res.on("drain", this.onDrain)
    // A socket handed over by an upgrade request has no HTTP server watching it: the response's
    // 'drain' never comes, so listen to the socket's own.
    this.socket?.on("drain", this.onDrain)
    // The socket's 'close' always fires, whatever the peer did: release here, not only when the
    // platform interrupts the request (it never does for a socket an upgrade request handed over).
    this.socket?.once("close", this.onClose)
  }

  private readonly onDrain = (): void => this.drained()
  private readonly onClose = (): void => this.lost()

  protected write(bytes: Uint8Array): boolean {
    return this.res.write(bytes)
  }

  protected get blocked(): boolean {
    // The response's flag is sticky on an upgraded socket (nobody resets it): the socket decides.
    return this.res.writableNeedDrain && (this.socket === null || this.socket.writableNeedDrain)
  }

  protected get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded
  }

  protected get finished(): boolean {
    return this.res.writableFinished
  }

  protected complete(final: Uint8Array): void {
    if (this.closeSocketOnFinish) {
      const socket = this.socket
      this.res.once("finish", () => socket?.destroySoon())
    }
    const onComplete = this.onComplete
    this.onComplete = undefined
    if (onComplete !== undefined) onComplete(final)
  }

  protected abort(): void {
    resetSocket(this.res)
  }

  protected detach(): void {
    this.res.removeListener("drain", this.onDrain)
    this.socket?.removeListener("drain", this.onDrain)
    this.socket?.removeListener("close", this.onClose)
    const onDetach = this.onDetach
    this.onDetach = undefined
    if (onDetach !== undefined) onDetach()
  }
}

/**
 * Serves a session on its Node response: the response's body ends once the session completes, and
 * the request's scope releases it whatever happens.
 * @internal
 */
export const nodeStreamResponse = (
  session: NodeSession,
  chunked: boolean
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, Scope.Scope> =>
  Effect.gen(function*() {
    const res = session.res
    let started = false
    const body: Readable = new Readable({
      read() {
        // First read: the server has written the head and piped this body; start writing.
        if (started) return
        started = true
        session.onComplete = (final) => {
          if (final.byteLength > 0 && !res.writableEnded && !res.destroyed) res.write(final)
          body.push(null)
        }
        session.start()
      }
    })
    session.onDetach = () => {
      if (!body.destroyed) body.destroy()
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => session.release()))
    if (res.socket === null || res.socket.destroyed) session.release() // the peer left while the subscription started
    if (chunked) return HttpServerResponse.raw(body, { contentType: "text/event-stream", headers: SSE_HEADERS })
    // Close-delimited body: no chunk framing around each write (RFC 9112 §6.3); Node closes the
    // socket once the response has finished.
    res.removeHeader("transfer-encoding")
    return HttpServerResponse.raw(body, { contentType: "text/event-stream", headers: CLOSE_DELIMITED_HEADERS })
  })
