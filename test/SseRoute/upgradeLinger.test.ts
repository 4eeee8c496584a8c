/**
 * A stream on a socket handed over by an upgrade request ends (its lifetime): nothing keeps the
 * connection afterwards, since the HTTP server no longer watches the socket (no keep-alive timeout).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { startServer } from "../utils/server.js"
import * as Net from "node:net"
import { rawGet, reader, waitFor } from "../utils/sse.js"

const UPGRADE = { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" }

/** A client that never closes its side: it does not answer the server's FIN with its own. */
const connect = (port: number): Promise<Net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect({ port, host: "127.0.0.1", allowHalfOpen: true })
    socket.once("connect", () => resolve(socket))
    socket.once("error", reject)
  })

const connections = (server: { getConnections: (cb: (e: Error | null, n: number) => void) => void }) =>
  Effect.promise(() => new Promise<number>((r) => server.getConnections((_, n) => r(n))))

/** The server's connection count, polled every 10 ms until it is 0 or 3 s have passed. */
const connectionsLeft = (server: Parameters<typeof connections>[0], from: number) =>
  Effect.gen(function*() {
    let n = from
    for (let i = 0; i < 300 && n > 0; i++) {
      n = yield* connections(server)
      if (n > 0) yield* Effect.promise(() => new Promise((r) => setTimeout(r, 10)))
    }
    return n
  })

describe("an ended stream on an upgraded socket", () => {
  it.scopedLive("leaves no connection behind once its stream ended, even if the peer keeps its side open", () =>
    Effect.gen(function*() {
      const { port, server } = yield* startServer({ route: { maxLifetime: "300 millis" }, http: { keepAliveTimeout: 500 } })
      // a plain keep-alive stream for comparison, and an upgraded one; neither client ever closes
      const plain = yield* Effect.promise(() => connect(port))
      const plainGot = reader(plain)
      plain.write(rawGet("/events?topic=x"))
      const upgraded = yield* Effect.promise(() => connect(port))
      const got = reader(upgraded)
      upgraded.write(rawGet("/events?topic=x", UPGRADE))
      yield* waitFor("both streams ended", () => got.text.includes("event: end") && plainGot.text.includes("event: end"), 10_000)
      const n = yield* connectionsLeft(server, 2)
      assert.strictEqual(n, 0, `server connections left 3 s after the streams ended (plain closed: ${plainGot.closed}, upgraded closed: ${got.closed})`)
      upgraded.destroy()
      plain.destroy()
    }), 30_000)

  it.scopedLive("a short answer (stats) on an upgraded socket leaves no connection behind either", () =>
    Effect.gen(function*() {
      const { port, server } = yield* startServer()
      const upgraded = yield* Effect.promise(() => connect(port))
      const got = reader(upgraded)
      upgraded.write(rawGet("/stats", UPGRADE))
      yield* waitFor("the answer", () => got.text.includes("HTTP/1.1 200"), 10_000)
      const n = yield* connectionsLeft(server, 1)
      assert.strictEqual(n, 0, "server connections left 3 s after the answer")
      upgraded.destroy()
    }), 30_000)

  it.scopedLive("an upgraded request to a path outside the route leaves no connection behind once answered", () =>
    Effect.gen(function*() {
      const { port, server } = yield* startServer()
      // one request through the route (its connection closed after it): the route now knows its server
      const first = yield* Effect.promise(() => connect(port))
      const firstGot = reader(first)
      first.end(rawGet("/stats", { connection: "close" }))
      yield* waitFor("the first answer and its close", () => firstGot.closed, 10_000)
      const upgraded = yield* Effect.promise(() => connect(port))
      const got = reader(upgraded)
      upgraded.write(rawGet("/nowhere", UPGRADE))
      yield* waitFor("the answer", () => got.text.includes("HTTP/1.1 404"), 10_000)
      const n = yield* connectionsLeft(server, 1)
      assert.strictEqual(n, 0, "server connections left 3 s after the 404")
      upgraded.destroy()
    }), 30_000)
})
