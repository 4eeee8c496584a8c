/**
 * The Node servers a route has served on, and what shutting the route down does to them. In the
 * documented layer order the platform removes its request listener before the route drains; a
 * request arriving then would be read and never answered, and `server.close()` would wait on its
 * connection forever. So at shutdown the route stops the servers accepting, answers every late
 * request itself (`Connection: close`), closes idle keep-alive connections, and at the deadline
 * destroys whatever is left.
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Http from "node:http"
import type * as Net from "node:net"
import { serverOf } from "./nodeEdge.js"

/** Marks the upgrade listener sluice adds, so each server gets one. */
const CLOSE_UPGRADED: unique symbol = Symbol.for("sluice/SseRoute/closeUpgraded")

/**
 * An upgraded socket is out of the HTTP server's hands: once the platform has answered and ended its
 * side, nothing (no keep-alive or request timeout) would free it from a peer that keeps its own side
 * open. Destroy it then, whatever path the request was for.
 */
const closeUpgraded = Object.assign((_req: Http.IncomingMessage, socket: Net.Socket) => {
  socket.once("finish", () => socket.destroySoon())
}, { [CLOSE_UPGRADED]: true })

/** Marks the late-answer listeners sluice adds, to tell them from the app's. */
const FALLBACK: unique symbol = Symbol.for("sluice/SseRoute/lateAnswer")

/** Answers one request that arrived after the platform stopped listening. @internal */
export type LateAnswer = (req: Http.IncomingMessage, res: Http.ServerResponse) => void

/** @internal */
export class ServerGuard {
  private readonly servers = new Set<Http.Server>()
  private open = 0
  private closedWaiters: Array<() => void> = []

  /** Remembers the server a request arrived on. */
  track(req: Http.IncomingMessage | undefined): void {
    const server = serverOf(req)
    if (server === undefined || this.servers.has(server)) return
    this.servers.add(server)
    if (!server.listeners("upgrade").some((l) => CLOSE_UPGRADED in l)) server.on("upgrade", closeUpgraded)
  }

  /** Stops accepting connections and answers late requests with `answer` when nothing else listens. */
  stopAccepting(answer: LateAnswer): void {
    for (const server of this.servers) {
      const fallback = Object.assign((req: Http.IncomingMessage, res: Http.ServerResponse) => {
        // The app still listens and answers it, or another route's fallback did.
        if (res.headersSent || server.listeners("request").some((l) => !(FALLBACK in l))) return
        try {
          answer(req, res)
        } catch {
          res.destroy()
        }
      }, { [FALLBACK]: true })
      server.on("request", fallback)
      if (!server.listening) continue
      this.open++
      // The callback runs once every connection has ended.
      server.close(() => {
        if (--this.open > 0) return
        const waiters = this.closedWaiters
        this.closedWaiters = []
        for (const wake of waiters) wake()
      })
    }
  }

  /**
   * Completes once every server this guard stopped has no connection left, closing keep-alive
   * connections as they turn idle meanwhile (Node closes only those idle when `close()` is called).
   */
  readonly whenClosed: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (this.open === 0) return resume(Effect.void)
    const timer = setInterval(() => this.closeIdle(), 10)
    const wake = () => {
      clearInterval(timer)
      resume(Effect.void)
    }
    this.closedWaiters.push(wake)
    return Effect.sync(() => {
      clearInterval(timer)
      this.closedWaiters = this.closedWaiters.filter((w) => w !== wake)
    })
  })

  closeIdle(): void {
    for (const server of this.servers) server.closeIdleConnections()
  }

  /** The deadline passed: every connection still open is destroyed. */
  destroyAll(): void {
    for (const server of this.servers) server.closeAllConnections()
  }
}
