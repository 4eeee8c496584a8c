/**
 * A tiny hand-written `node:http` server for client tests: each request is handed, with its index,
 * to a handler that writes whatever bytes (or statuses) the test needs. The server records every
 * request and whether its socket closed.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import type * as Net from "node:net"

/** One request the raw server received. */
export interface RawRequest {
  readonly index: number
  readonly req: Http.IncomingMessage
  readonly res: Http.ServerResponse
  /** The `Last-Event-ID` header, if any. */
  readonly lastEventId: string | undefined
  /** Set when the request's socket closed. */
  closed: boolean
}

export interface RawServer {
  readonly url: string
  readonly requests: Array<RawRequest>
  /** Sockets currently open. */
  readonly sockets: Set<Net.Socket>
}

/** Writes the head of a `200 text/event-stream` answer and flushes it. */
export const sseHead = (res: Http.ServerResponse, contentType = "text/event-stream"): void => {
  res.writeHead(200, { "content-type": contentType, "cache-control": "no-cache" })
  res.flushHeaders()
}

/** Serves `handler` on 127.0.0.1:0 for the current scope; closing it destroys every socket. */
export const startRawServer = (
  handler: (request: RawRequest) => void
): Effect.Effect<RawServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ server: Http.Server; raw: RawServer }>((resume) => {
      const requests: Array<RawRequest> = []
      const sockets = new Set<Net.Socket>()
      const server = Http.createServer((req, res) => {
        const header = req.headers["last-event-id"]
        const request: RawRequest = {
          index: requests.length,
          req,
          res,
          lastEventId: typeof header === "string" ? header : undefined,
          closed: false
        }
        requests.push(request)
        req.socket.once("close", () => {
          request.closed = true
        })
        res.on("error", () => {})
        handler(request)
      })
      server.on("connection", (socket) => {
        sockets.add(socket)
        socket.on("error", () => {})
        socket.once("close", () => sockets.delete(socket))
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address() as Net.AddressInfo
        resume(Effect.succeed({ server, raw: { url: `http://127.0.0.1:${address.port}`, requests, sockets } }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ raw }) => raw))
