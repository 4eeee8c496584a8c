/**
 * The raw Node objects behind an `@effect/platform-node` request, and the guards every socket the
 * route writes to gets. A client controls its socket: it can half-close it, reset it, pipeline
 * requests behind a stream or send upgrade headers (which hand the route a socket the HTTP server
 * no longer watches). None of that may crash the process or leave a subscription behind.
 * @internal
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import type * as Http from "node:http"
import type * as Net from "node:net"

/** @internal */
export const rawResponse = (request: HttpServerRequest.HttpServerRequest): Http.ServerResponse | undefined => {
  try {
    const res = NodeHttpServerRequest.toServerResponse(request) as Http.ServerResponse | undefined
    return res !== undefined && typeof res.write === "function" && typeof res.destroy === "function" ? res : undefined
  } catch {
    return undefined
  }
}

/** @internal */
export const rawRequest = (request: HttpServerRequest.HttpServerRequest): Http.IncomingMessage | undefined => {
  try {
    const req = NodeHttpServerRequest.toIncomingMessage(request) as Http.IncomingMessage | undefined
    return req !== undefined && typeof req.on === "function" && typeof req.resume === "function" ? req : undefined
  } catch {
    return undefined
  }
}

const GUARDED: unique symbol = Symbol.for("sluice/SseRoute/guarded")

type Guarded = Net.Socket & { [GUARDED]?: true }

const onSocketError = function(this: Net.Socket): void {
  // EPIPE, ECONNRESET, ETIMEDOUT…: the peer is gone. 'close' follows and releases everything.
  this.destroy()
}

const onSocketEnd = function(this: Net.Socket): void {
  // The peer half-closed: a stream reader that sends FIN is gone (an EventSource never does it).
  this.destroy()
}

/**
 * Guards a socket the route writes a stream to, once: an `'error'` handler (a socket handed over by
 * an upgrade request has none, and an unhandled `EPIPE` would kill the process), a half-close from
 * the peer destroys it, and TCP keepalive finds peers whose host vanished.
 * @internal
 */
export const guardSocket = (socket: Net.Socket, keepAliveMillis: number): void => {
  const guarded = socket as Guarded
  if (guarded[GUARDED] === true) return
  guarded[GUARDED] = true
  socket.on("error", onSocketError)
  socket.once("end", onSocketEnd)
  if (typeof socket.setKeepAlive === "function") socket.setKeepAlive(true, keepAliveMillis)
}

/**
 * Closes the socket of a request handed over by an upgrade once its answer (a stream or a short
 * response) is out. No HTTP server watches that socket any more: the platform only half-closes it
 * after the answer, and no keep-alive or request timeout would ever free it from a peer that keeps
 * its side open. Other requests are left alone. (For every path, `ServerGuard` does the same on the
 * servers it knows; this covers the first request, which arrives before the guard knows its server.)
 * @internal
 */
export const closeWhenAnswered = (
  req: Http.IncomingMessage | undefined,
  request: HttpServerRequest.HttpServerRequest
): void => {
  if ((req as { readonly upgrade?: unknown } | undefined)?.upgrade !== true) return
  const res = rawResponse(request)
  const socket = res?.socket
  if (res === undefined || socket === null || socket === undefined) return
  res.once("finish", () => socket.destroySoon())
}

/**
 * Destroys a socket with a TCP reset: the kernel drops its send queue at once, where a plain
 * destroy leaves an orphaned socket retransmitting to a peer that stopped reading for minutes.
 * @internal
 */
export const resetSocket = (res: Http.ServerResponse): void => {
  const socket = res.socket as (Net.Socket & { resetAndDestroy?: () => void }) | null
  if (socket !== null && typeof socket.resetAndDestroy === "function" && !socket.destroyed) {
    try {
      socket.resetAndDestroy()
    } catch {
      socket.destroy()
    }
  }
  if (!res.destroyed) res.destroy()
}

/**
 * Whether the response waits behind another one on a pipelined connection: Node starts every
 * pipelined request at once but gives a response its socket only when the one before it finished,
 * and a queued response never sees the socket's `'close'`.
 * @internal
 */
export const isQueued = (res: Http.ServerResponse): boolean => res.socket === null || res.socket === undefined

/**
 * Writes a complete response straight to the raw Node response and ends it. Used where the platform
 * would wait for the response's `'finish'`, which a response queued on a connection that then closes
 * never emits (its request fiber would stay parked forever); the platform skips a response that has
 * already ended.
 * @internal
 */
export const endRaw = (
  res: Http.ServerResponse,
  status: number,
  headers: Record<string, string>,
  body: string | Uint8Array
): void => {
  if (res.headersSent || res.writableEnded) return
  const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : body
  res.writeHead(status, { ...headers, "content-length": String(bytes.byteLength) })
  res.end(bytes)
}

/** The Node server a request arrived on (`socket.server`), when there is one. @internal */
export const serverOf = (req: Http.IncomingMessage | undefined): Http.Server | undefined => {
  const server = (req?.socket as (Net.Socket & { server?: unknown }) | undefined)?.server
  return server !== null && typeof server === "object" && typeof (server as Http.Server).close === "function" &&
      typeof (server as Http.Server).closeIdleConnections === "function"
    ? server as Http.Server
    : undefined
}
