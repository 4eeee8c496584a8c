/**
 * The Node transport: a session written straight to the raw `ServerResponse` by the central writer.
 * The route answers the platform with a hand-over response ({@link handOverResponse}); the route's
 * outermost wrapper writes its head itself and hands the response to the session
 * ({@link NodeSession.open}), and the request's fiber ends at once: no fiber, `Stream` or body
 * stream stays behind per connection. From then on the session is bound to the socket's `'close'`
 * and the response's `'finish'`, and owned by the route's writer (the write deadline, the drain on
 * shutdown and its final destroy).
 * @internal
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as Http from "node:http"
import type * as Net from "node:net"
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

/**
 * What `@effect/platform-node` reads to skip a response the handler already wrote: it answers a
 * response whose `writableEnded` is true with nothing. Node itself reads `finished`, which stays its own.
 */
const HANDED_OVER: PropertyDescriptor = { value: true, configurable: true, enumerable: false, writable: false }

/** @internal */
export class NodeSession extends Session {
  /** Close the socket once the response finished (shutdown: the client reconnects elsewhere). */
  closeSocketOnFinish = false
  private readonly socket: Net.Socket | null
  private detached = false

  constructor(
    writer: WriterPort,
    sub: SubscriberHandle,
    readonly res: Http.ServerResponse,
    backlog: Uint8Array,
    expiresAt: number | undefined,
    /** Chunked body; otherwise close-delimited (no chunk framing, RFC 9112 §6.3). */
    readonly chunked: boolean
  ) {
    super(writer, sub, backlog, expiresAt)
    this.socket = res.socket
    res.on("drain", this.onDrain)
    // A socket handed over by an upgrade request has no HTTP server watching it: the response's
    // 'drain' never comes, so listen to the socket's own.
    this.socket?.on("drain", this.onDrain)
    // The socket's 'close' always fires, whatever the peer did: release here, whether or not the
    // request's fiber is still running (it has ended once the session is open).
    this.socket?.once("close", this.onClose)
  }

  private readonly onDrain = (): void => this.drained()
  private readonly onClose = (): void => this.lost()
  /** A finished response releases its session (on a kept-alive socket, 'close' comes much later). */
  private readonly onFinish = (): void => {
    if (this.state === "done") this.release()
  }

  /**
   * Writes the head and starts the stream; from here the platform leaves the response alone and the
   * request's fiber ends. A session released meanwhile (the peer left) destroys the response.
   */
  open(status: number, headers: Http.OutgoingHttpHeaders): void {
    const res = this.res
    Object.defineProperty(res, "writableEnded", HANDED_OVER)
    if (this.detached || res.destroyed || res.headersSent) {
      this.release()
      return void res.destroy()
    }
    if (!this.chunked) res.removeHeader("transfer-encoding")
    res.writeHead(status, headers)
    res.once("finish", this.onFinish)
    this.start()
  }

  protected write(bytes: Uint8Array): boolean {
    return this.res.write(bytes)
  }

  protected get blocked(): boolean {
    // The response's flag is sticky on an upgraded socket (nobody resets it): the socket decides.
    return this.res.writableNeedDrain && (this.socket === null || this.socket.writableNeedDrain)
  }

  protected get closed(): boolean {
    // `finished`, not `writableEnded`: the latter is what the platform was told (see HANDED_OVER).
    return this.res.destroyed || this.res.finished
  }

  protected get finished(): boolean {
    return this.res.writableFinished
  }

  protected complete(final: Uint8Array): void {
    const res = this.res
    if (res.destroyed || res.finished) return
    if (this.closeSocketOnFinish) {
      const socket = this.socket
      res.once("finish", () => socket?.destroySoon())
    }
    if (final.byteLength > 0) res.end(final)
    else res.end()
  }

  protected abort(): void {
    resetSocket(this.res)
  }

  protected detach(): void {
    this.detached = true
    this.res.removeListener("drain", this.onDrain)
    this.res.removeListener("finish", this.onFinish)
    this.socket?.removeListener("drain", this.onDrain)
    this.socket?.removeListener("close", this.onClose)
  }

  /** The request ended without handing the response over: nothing will write it. */
  readonly unclaimed = (): void => {
    if (this.state === "opening") this.release()
  }
}

/**
 * The answer to the platform for a Node session: a response that names the session, which the
 * route's outermost wrapper hands over ({@link handOver}); its headers are the stream's plus any
 * the route adds (CORS).
 * @internal
 */
export const handOverResponse = (session: NodeSession): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.raw(session, {
    contentType: "text/event-stream",
    headers: session.chunked ? SSE_HEADERS : CLOSE_DELIMITED_HEADERS
  })

/**
 * Opens the session a hand-over response names, with the response's status and headers; true when
 * `response` was one (the platform will then skip it).
 * @internal
 */
export const handOver = (response: HttpServerResponse.HttpServerResponse): boolean => {
  const body = response.body
  if (body._tag !== "Raw" || !(body.body instanceof NodeSession)) return false
  body.body.open(response.status, response.headers)
  return true
}
