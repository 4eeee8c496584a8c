/**
 * The client against three sluice nodes (demo-server processes on the Redis log, one Redis). The
 * client has one URL: a loopback TCP proxy in the test, which sends each new connection to a random
 * node (seeded) and cuts it after 50-150 events, at a frame boundary or in the middle of a frame,
 * by FIN or RST. Meanwhile 10,000 events are published in bursts on random nodes. The client must
 * receive every event once, in order: 0 lost, 0 duplicated, 0 out of order.
 *
 * The client's waits run on the `TestClock`, which the test moves on as soon as the client sleeps:
 * each reconnect happens at once instead of after the route's `retry:` (at least 500 ms), and the
 * ~100 reconnects take no wall-clock time. The waits themselves are tested in `timing.test.ts`.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { afterAll, assert, beforeEach, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Net from "node:net"
import * as SseClient from "../../src/SseClient.js"
import * as Delivery from "../utils/DeliveryChecker.js"
import { type Node, startNode } from "../utils/nodes.js"
import { seeded, testSeed } from "../utils/random.js"
import { deletePrefixes, requireRedis, testPrefix } from "../utils/redis.js"
import { sleepReal, until } from "../utils/sse.js"

beforeEach(requireRedis)

const prefix = testPrefix("client-nodes")
afterAll(() => requireRedis().then(() => deletePrefixes([prefix]), () => undefined))

const EVENTS = 10_000
const ID = Buffer.from("id: ")

interface Cuts {
  boundaryFin: number
  midFrameFin: number
  midFrameRst: number
  byNode: Array<number>
}

/** The proxy: each connection to a random node, cut after 50-150 events (counted as `id: ` fields). */
const startProxy = (nodes: ReadonlyArray<Node>, random: ReturnType<typeof seeded>, cuts: Cuts) =>
  Effect.acquireRelease(
    Effect.async<Net.Server>((resume) => {
      const server = Net.createServer((downstream) => {
        const node = nodes[random.int(nodes.length)]!
        cuts.byNode[node.index]!++
        const upstream = Net.connect(Number(new URL(node.url).port), "127.0.0.1")
        const limit = 50 + random.int(101)
        const mode = random.int(3)
        let seen = 0
        const close = () => {
          upstream.destroy()
          downstream.destroy()
        }
        downstream.on("error", close).on("close", close).pipe(upstream)
        upstream.on("error", close).on("close", close)
        upstream.on("data", (data: Buffer) => {
          let at = -1
          for (let i = data.indexOf(ID); i !== -1; i = data.indexOf(ID, i + 1)) {
            if (++seen > limit) {
              at = i
              break
            }
          }
          if (at === -1) return void downstream.write(data)
          // The (limit+1)-th event starts at `at`: end before it, or inside it.
          upstream.destroy()
          if (mode === 0) {
            cuts.boundaryFin++
            downstream.end(data.subarray(0, at))
          } else {
            const part = data.subarray(0, at + 1 + random.int(12))
            if (mode === 1) {
              cuts.midFrameFin++
              downstream.end(part)
            } else {
              cuts.midFrameRst++
              downstream.write(part, () => downstream.resetAndDestroy())
            }
          }
        })
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
  )

/** `POST /demo/burst` on `node`: the ids of the `count` events it published. */
const burst = (node: Node, count: number) =>
  Effect.promise(async () => {
    const response = await fetch(`${node.url}/demo/burst`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ topic: "m", count })
    })
    const answer = (await response.json()) as { first: string; last: string }
    assert.strictEqual(response.status, 201, JSON.stringify(answer))
    const dash = answer.first.lastIndexOf("-")
    const first = Number(answer.first.slice(dash + 1))
    return Array.from({ length: count }, (_, i) => `${answer.first.slice(0, dash)}-${first + i}`)
  })

/** Moves the TestClock to each sleep's end as soon as one is registered (the client's waits). */
const driveClock = Effect.forever(Effect.gen(function*() {
  const sleeps = yield* TestClock.sleeps()
  if (Chunk.isEmpty(sleeps)) return yield* sleepReal(1)
  const now = yield* TestClock.currentTimeMillis
  yield* TestClock.adjust(Math.max(0, Math.min(...sleeps) - now))
}))

describe("SseClient against several sluice nodes on Redis", () => {
  it.scoped(
    "3 nodes, each connection to a random node cut after 50-150 events (FIN, RST, mid-frame), 10,000 events: 0 lost, 0 duplicated, 0 out of order",
    () =>
      Effect.gen(function*() {
        const seed = testSeed()
        const random = seeded(seed)
        const nodes = yield* Effect.all([0, 1, 2].map((i) => startNode(i, { prefix })), { concurrency: "unbounded" })
        const cuts: Cuts = { boundaryFin: 0, midFrameFin: 0, midFrameRst: 0, byNode: [0, 0, 0] }
        const proxy = yield* startProxy(nodes, random, cuts)
        const url = `http://127.0.0.1:${(proxy.address() as Net.AddressInfo).port}/events`
        const start = (yield* burst(nodes[0]!, 1))[0]!
        yield* Effect.forkScoped(driveClock)

        const received: Array<string> = []
        let resets = 0
        const client = yield* SseClient.stream(url, { topics: ["m"], lastEventId: start, idleTimeout: Duration.infinity }).pipe(
          Stream.take(EVENTS),
          Stream.runForEach((item) => Effect.sync(() => item._tag === "Message" ? received.push(item.id) : resets++)),
          Effect.provide(FetchHttpClient.layer),
          Effect.fork
        )
        const t0 = Date.now()
        const log: Array<string> = []
        while (log.length < EVENTS) {
          const count = Math.min(EVENTS - log.length, 1 + random.int(150))
          log.push(...(yield* burst(nodes[random.int(nodes.length)]!, count)))
        }
        const published = Date.now() - t0
        // Real time (the TestClock runs ahead whenever the client sleeps).
        const done = yield* Effect.promise(() => until(() => received.length + resets >= EVENTS, 60_000))
        if (done) yield* Fiber.join(client)
        const finished = Date.now() - t0
        const report = Delivery.check(log, received)
        const connections = cuts.byNode.reduce((a, b) => a + b, 0)
        console.log(
          `[client nodes] seed ${seed}: published in ${published} ms, all received after ${finished} ms; ` +
            `${received.length} received over ${connections} connections ` +
            `(nodes ${cuts.byNode.join("/")}); cuts: ${cuts.boundaryFin} FIN at a frame boundary, ` +
            `${cuts.midFrameFin} FIN mid-frame, ${cuts.midFrameRst} RST mid-frame; ${Delivery.describe(report)}`
        )
        assert.isTrue(done, `seed ${seed}: the client received ${EVENTS} events`)
        assert.isTrue(report.ok, `seed ${seed}: ${Delivery.describe(report)}`)
        assert.strictEqual(resets, 0, `seed ${seed}: no reset`)
        assert.isAtLeast(connections, EVENTS / 150, `seed ${seed}: the connection was cut every 50-150 events`)
        for (const n of cuts.byNode) assert.isAtLeast(n, 5, `seed ${seed}: every node served connections`)
        assert.isAtLeast(Math.min(cuts.boundaryFin, cuts.midFrameFin, cuts.midFrameRst), 5, `seed ${seed}: every kind of cut`)
      }),
    120_000
  )
})
