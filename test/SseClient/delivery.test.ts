/**
 * The client against the real sluice route: streams the server keeps ending (overflow of a small
 * per-connection buffer, a short max lifetime) and sockets the test destroys at random (FIN and RST),
 * 10,000 events, one client on the fetch `HttpClient` and one on the Node one. Every event must
 * arrive exactly once, in order. The log's replay read is asynchronous (0-4 ms, like `XRANGE`), so
 * the replay/live race is real.
 *
 * The route never asks for a retry below 500 ms, which bounds how often it can end a stream in a
 * test of reasonable length; a hand-written log server (`retry: 0`) ends every 50-150 events, a third
 * of those cuts in the middle of a frame with FIN or RST, for 10,000 events.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import type * as Net from "node:net"
import type * as Event from "../../src/Event.js"
import * as SseClient from "../../src/SseClient.js"
import * as Delivery from "../utils/DeliveryChecker.js"
import { sseHead, startRawServer } from "../utils/rawServer.js"
import { slowReads, startServer } from "../utils/server.js"
import { sleepReal, waitFor, waitForEffect } from "../utils/sse.js"

const EVENTS = 10_000
const BURST = 150 // > maxEvents: every connected client overflows
const PER_CONNECTION = 100
const PUBLISH_MILLIS = 10_000

interface Client {
  readonly name: string
  /** Ids in arrival order. */
  readonly received: Array<string>
  readonly distinct: Set<string>
  readonly causes: Array<SseClient.DisconnectCause>
  connects: number
  resets: number
  badIds: number
}

const consume = (client: Client, url: string, layer: Layer.Layer<HttpClient.HttpClient>) =>
  SseClient.streamWithStatus(url, { topics: ["load"] }).pipe(
    Stream.runForEach((item) =>
      Effect.sync(() => {
        switch (item._tag) {
          case "Message":
            if (item.id !== item.data) client.badIds++
            client.received.push(item.id)
            client.distinct.add(item.id)
            break
          case "Reset":
            client.resets++
            break
          case "Connected":
            client.connects++
            break
          case "Disconnected":
            client.causes.push(item.cause)
        }
      })
    ),
    Effect.provide(layer),
    Effect.fork
  )

describe("SseClient against the sluice route", () => {
  it.scopedLive(
    "fetch and Node clients × 10,000 events; ends by overflow and lifetime, FIN and RST at random: 0 lost, 0 duplicated, 0 out of order",
    () =>
      Effect.gen(function*() {
        const { bus, route, server, url } = yield* startServer({
          bus: { log: { maxEvents: 2 * EVENTS }, maxReplay: 2 * EVENTS },
          route: {
            maxEvents: PER_CONNECTION,
            maxReplay: 2 * EVENTS,
            retryMin: "500 millis",
            retryMax: "500 millis",
            maxLifetime: "400 millis",
            heartbeat: "1 second"
          },
          wrapLog: slowReads(4)
        })
        const sockets = new Set<Net.Socket>()
        server.on("connection", (socket: Net.Socket) => {
          sockets.add(socket)
          socket.once("close", () => sockets.delete(socket))
        })
        const clients: Array<Client> = ["fetch", "node"].map((name) => ({
          name,
          received: [],
          distinct: new Set(),
          causes: [],
          connects: 0,
          resets: 0,
          badIds: 0
        }))
        const fibers = [
          yield* consume(clients[0]!, `${url}/events`, FetchHttpClient.layer),
          yield* consume(clients[1]!, `${url}/events`, NodeHttpClient.layer)
        ]
        yield* waitFor("every client to connect", () => clients.every((c) => c.connects >= 1), 10_000)

        // 10,000 events over ~10 s of wall-clock time: a batch every ~10 ms sized to keep pace, a burst
        // of 150 every 40 batches, and every 600 ms one open socket destroyed (FIN or RST, seeded).
        const { epoch, head } = (yield* bus.stats).log
        const log: Array<Event.EventId> = []
        const started = Date.now()
        let batches = 0
        let seed = 12345
        const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648
        let nextDestroy = started + 600
        let fins = 0
        let rsts = 0
        while (log.length < EVENTS) {
          const due = Math.ceil((EVENTS * (Date.now() - started)) / PUBLISH_MILLIS)
          const size = Math.min(EVENTS - log.length, Math.max(1, due - log.length, ++batches % 40 === 0 ? BURST : 0))
          const inputs: Array<Event.EventInput> = []
          for (let i = 1; i <= size; i++) inputs.push({ topic: "load", data: `${epoch}-${head + log.length + i}` })
          for (const event of yield* bus.publishAll(inputs)) log.push(event.id)
          if (Date.now() >= nextDestroy && sockets.size > 0) {
            nextDestroy += 600
            const open = Array.from(sockets)
            const victim = open[Math.floor(random() * open.length)]!
            if (random() < 0.5) {
              fins++
              victim.destroy()
            } else {
              rsts++
              victim.resetAndDestroy()
            }
          }
          yield* sleepReal(10)
        }
        const publishedIn = Date.now() - started

        yield* waitFor("every client to receive every event", () => clients.every((c) => c.distinct.size >= EVENTS), 20_000)
        // Keep the streams cycling (maxLifetime 400 ms) until each client has been through at least 5
        // connections, and a little longer: a late duplicate would show up now. (On a loaded machine
        // the publish can end before that many.)
        yield* waitFor("every client to reconnect at least 4 times", () => clients.every((c) => c.connects >= 5), 30_000)
        yield* sleepReal(1_200)
        const stats = yield* bus.stats

        const reports = clients.map((c) => Delivery.check(log, c.received))
        const count = (c: Client, tag: string, reason?: string) =>
          c.causes.filter((cause) => cause._tag === tag && (reason === undefined || (cause as any).reason === reason)).length
        console.log(
          `[client delivery] ${clients.length} clients × ${EVENTS} events published in ${publishedIn} ms; ` +
            `destroyed ${fins} FIN, ${rsts} RST; ` +
            clients.map((c, i) =>
              `${c.name}: ${c.connects} connections, ends overflow ${count(c, "End", "overflow")} lifetime ${
                count(c, "End", "lifetime")
              } other ${count(c, "End") - count(c, "End", "overflow") - count(c, "End", "lifetime")}, network errors ${
                count(c, "NetworkError")
              }; lost ${reports[i]!.lost.length}, duplicated ${reports[i]!.duplicated.length}, out of order ${
                reports[i]!.outOfOrder.length
              }`
            ).join("; ")
        )
        for (const [i, client] of clients.entries()) {
          assert.isTrue(reports[i]!.ok, `${client.name}: ${Delivery.describe(reports[i]!)}`)
          assert.strictEqual(reports[i]!.received, EVENTS, client.name)
          assert.strictEqual(client.badIds, 0, "every message's id is its log id")
          assert.strictEqual(client.resets, 0, "no cursor needed a reset")
          assert.isAtLeast(client.connects, 5, `${client.name}: the stream was ended many times`)
          assert.isAtLeast(
            count(client, "End", "overflow") + count(client, "End", "lifetime"),
            1,
            `${client.name}: announced ends (overflow, lifetime) were seen as such`
          )
        }
        assert.isAtLeast(stats.ends.overflow, 2, "streams ended by overflow")
        assert.isAtLeast(stats.ends.lifetime, 2, "streams ended by max lifetime")
        assert.isAtLeast(fins + rsts, 4, "sockets were destroyed")
        assert.isAtLeast(
          clients.reduce((n, c) => n + c.causes.filter((cause) => cause._tag !== "End" || cause.reason === undefined).length, 0),
          1,
          "some destroyed sockets were seen as broken or unannounced ends"
        )
        assert.isAbove(stats.resumes.resumed, 10)

        for (const fiber of fibers) yield* Fiber.interrupt(fiber)
        yield* waitForEffect("subscribers to return to 0", bus.stats, (s) => s.subscribers === 0, 5_000)
        // (Sockets the HTTP clients keep alive in their pools close on their own keep-alive timers.)
        yield* waitForEffect("the route's streams to return to 0", route.connections, (n) => n === 0, 5_000)
      }),
    60_000
  )

  it.scopedLive(
    "a log server ending every 50-150 events, some mid-frame by FIN or RST: 10,000 events, 0 lost, 0 duplicated, 0 out of order",
    () =>
      Effect.gen(function*() {
        const frames = Array.from({ length: EVENTS }, (_, i) => `id: e-${i + 1}\ndata: e-${i + 1}\n\n`)
        let seed = 777
        const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648
        const ends = { clean: 0, fin: 0, rst: 0 }
        const server = yield* startRawServer((r) => {
          const after = r.lastEventId === undefined ? 0 : Number(r.lastEventId.slice(2))
          const count = 50 + Math.floor(random() * 101)
          const cut = random()
          sseHead(r.res)
          const body = "retry: 0\n" + frames.slice(after, after + count).join("")
          if (after + count >= EVENTS || cut < 0.66) {
            ends.clean++
            return void r.res.end(body)
          }
          // Cut inside the next frame, then FIN or RST.
          const next = frames[after + count]!
          r.res.write(body + next.slice(0, 1 + Math.floor(random() * (next.length - 2))), () => {
            if (cut < 0.83) {
              ends.fin++
              r.req.socket.destroy()
            } else {
              ends.rst++
              r.req.socket.resetAndDestroy()
            }
          })
        })
        for (const [name, layer] of [["fetch", FetchHttpClient.layer], ["node", NodeHttpClient.layer]] as const) {
          const before = server.requests.length
          const received = yield* SseClient.stream(server.url).pipe(
            Stream.take(EVENTS),
            Stream.map((m) => m._tag === "Message" ? m.id : "reset"),
            Stream.runCollect,
            Effect.provide(layer)
          )
          const report = Delivery.check(frames.map((_, i) => `e-${i + 1}`), Array.from(received))
          const connections = server.requests.length - before
          console.log(`[client delivery raw ${name}] ${connections} connections; ${Delivery.describe(report)}`)
          assert.isTrue(report.ok, `${name}: ${Delivery.describe(report)}`)
          assert.isAtLeast(connections, EVENTS / 150, `${name}: the server ended every 50-150 events`)
        }
        console.log(`[client delivery raw] ends: clean ${ends.clean}, FIN mid-frame ${ends.fin}, RST mid-frame ${ends.rst}`)
        assert.isAbove(ends.fin, 10)
        assert.isAbove(ends.rst, 10)
      }),
    60_000
  )
})
