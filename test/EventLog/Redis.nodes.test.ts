/**
 * Three sluice nodes as separate processes (the demo server on the Redis log), each with its own
 * HTTP server on loopback, on one Redis. Events are published on random nodes; `eventsource`
 * clients reconnect to a random node every 50-150 events, with their last id. Every client must
 * receive the whole log: 0 lost, 0 duplicated, 0 out of order. Halfway, one node is SIGKILLed and
 * its clients resume on the others. The plan (nodes, reconnect points) comes from a seed.
 */
import { afterAll, assert, beforeEach, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { EventSource } from "eventsource"
import * as RedisLog from "../../src/EventLog/Redis.js"
import * as Delivery from "../utils/DeliveryChecker.js"
import { type Node, startNode as startNodeProcess } from "../utils/nodes.js"
import { deletePrefixes, privateRedis, REDIS_URL, requireRedis, testPrefix } from "../utils/redis.js"

beforeEach(requireRedis)

const prefix = testPrefix("nodes")
afterAll(() => requireRedis().then(() => deletePrefixes([prefix]), () => undefined))

const EVENTS = 20_000
const CLIENTS = 6
const PUBLISHERS = 12
const SEED = 20261201

/** mulberry32: the same seed gives the same plan. */
const seeded = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Starts one demo server on a free port; it is SIGKILLed when the scope closes. */
const startNode = (index: number, redisUrl = REDIS_URL) => startNodeProcess(index, { prefix, redisUrl })

/** One `eventsource` client that hops to a random live node every 50-150 events. */
class Client {
  readonly received: Array<string> = []
  /** The node each event arrived through, by id. */
  readonly via = new Map<string, number>()
  readonly resets: Array<string> = []
  reconnects = 0
  private source: EventSource | undefined
  private closed = false

  constructor(
    private readonly nodes: ReadonlyArray<Node>,
    private readonly random: () => number,
    private lastId: string
  ) {}

  connect(): void {
    if (this.closed) return
    const alive = this.nodes.filter((n) => n.alive)
    const node = alive[Math.floor(this.random() * alive.length)]!
    const hopAfter = 50 + Math.floor(this.random() * 101)
    let count = 0
    const source = new EventSource(`${node.url}/events?topic=m&lastEventId=${this.lastId}`)
    this.source = source
    const hop = () => {
      if (this.source !== source) return
      source.close()
      this.reconnects++
      this.connect()
    }
    source.onmessage = (e) => {
      // A closed connection's late events must not count: the next one resumes from lastId.
      if (this.source !== source) return
      this.received.push(e.lastEventId)
      this.via.set(e.lastEventId, node.index)
      this.lastId = e.lastEventId
      if (++count >= hopAfter) hop()
    }
    source.addEventListener("reset", (e) => {
      if (this.source === source) this.resets.push(e.data)
    })
    // The stream ended (node killed, overflow) or failed to open: go to another node at once.
    source.onerror = () => setTimeout(hop, 5)
  }

  close(): void {
    this.closed = true
    this.source?.close()
  }

  get last(): string {
    return this.lastId
  }
}

const postEvent = async (node: Node, data: string): Promise<string | undefined> => {
  try {
    const response = await fetch(`${node.url}/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ topic: "m", data })
    })
    if (response.status !== 201) throw new Error(`POST answered ${response.status}: ${await response.text()}`)
    return ((await response.json()) as { id: string }).id
  } catch (cause) {
    // Only a node that was killed may fail a publish.
    if (node.alive) throw cause
    return undefined
  }
}

/** Every event of the log, read from Redis through the log itself. */
const readLog = Effect.gen(function*() {
  const log = yield* RedisLog.make({ url: REDIS_URL, prefix })
  const head = yield* log.head
  const ids: Array<string> = []
  let cursor = 0
  while (cursor < head.seq) {
    const page = yield* log.read(cursor, { limit: 1_000, upTo: head.seq })
    for (const event of page.events) ids.push(`${event.id.epoch}-${event.id.seq}`)
    cursor = page.cursor
  }
  return ids
}).pipe(Effect.scoped)

const waitUntil = (what: string, check: () => boolean, millis: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + millis
    while (!check() && Date.now() < deadline) yield* Effect.sleep("20 millis")
    assert.isTrue(check(), what)
  })

describe("EventLog Redis: several nodes", () => {
  it.live(
    `3 node processes, ${EVENTS} events on random nodes, clients hopping between nodes, one node SIGKILLed: 0 lost, 0 duplicated, 0 out of order`,
    () =>
      Effect.gen(function*() {
        const nodes = yield* Effect.all([0, 1, 2].map((i) => startNode(i)), { concurrency: "unbounded" })
        const random = seeded(SEED)
        const stats = yield* Effect.promise(() => fetch(`${nodes[0]!.url}/stats`).then((r) => r.json() as Promise<{ log: { epoch: string; head: number } }>))
        const start = `${stats.log.epoch}-${stats.log.head}`
        const clients = Array.from({ length: CLIENTS }, () => new Client(nodes, seeded(Math.floor(random() * 2 ** 32)), start))
        yield* Effect.addFinalizer(() => Effect.sync(() => clients.forEach((c) => c.close())))
        clients.forEach((c) => c.connect())

        const publishedOn = new Map<string, number>()
        let next = 0
        let lost = 0
        const publisher = Effect.promise(async () => {
          while (next < EVENTS) {
            const i = next++
            if (i === EVENTS / 2) {
              nodes[2]!.alive = false
              nodes[2]!.child.kill("SIGKILL")
            }
            const alive = nodes.filter((n) => n.alive)
            const node = alive[Math.floor(random() * alive.length)]!
            const id = await postEvent(node, String(i))
            if (id === undefined) lost++
            else publishedOn.set(id, node.index)
          }
        })
        yield* Effect.all(Array.from({ length: PUBLISHERS }, () => publisher), { concurrency: "unbounded", discard: true })

        const log = yield* readLog
        assert.isAtLeast(log.length, EVENTS - lost, "every acknowledged publish is in the log")
        for (const id of publishedOn.keys()) assert.include(log, id)
        const lastId = log[log.length - 1]!
        yield* waitUntil("every client reached the end of the log", () => clients.every((c) => c.last === lastId), 30_000)

        for (const [i, client] of clients.entries()) {
          const report = Delivery.check(log, client.received)
          assert.isTrue(report.ok, `client ${i}: ${Delivery.describe(report)}`)
          assert.deepStrictEqual(client.resets, [], `client ${i} was never reset`)
          assert.isAtLeast(client.reconnects, Math.floor(EVENTS / 150) - 1, `client ${i} hopped between nodes`)
        }
        // An event published on one node reached subscribers on each of the others.
        const crossed = new Set<string>()
        for (const client of clients) {
          for (const [id, to] of client.via) {
            const from = publishedOn.get(id)
            if (from !== undefined && from !== to) crossed.add(`${from}->${to}`)
          }
        }
        for (const pair of ["0->1", "0->2", "1->0", "1->2", "2->0", "2->1"]) assert.isTrue(crossed.has(pair), `some event went ${pair}`)
      }).pipe(Effect.scoped),
    // 20,000 events took 300 s on a 2-core machine at load average 13-17 (2026-12-07): 3x margin.
    900_000
  )

  it.live("while Redis is down a node answers 200 + retry + end to resumes, 503 to publishes, keeps open streams, and recovers by itself", () =>
    Effect.gen(function*() {
      const server = yield* privateRedis
      const node = yield* startNode(0, server.url)
      const first = yield* Effect.promise(() => postEvent(node, "before"))
      assert.isDefined(first)
      const open = new Client([node], seeded(SEED), first!)
      yield* Effect.addFinalizer(() => Effect.sync(() => open.close()))
      open.connect()
      yield* server.stop
      const resume = yield* Effect.promise(async () => {
        const response = await fetch(`${node.url}/events?topic=m&lastEventId=${first!.replace(/-\d+$/, "-0")}`)
        return { status: response.status, body: await response.text() }
      })
      assert.strictEqual(resume.status, 200)
      assert.match(resume.body, /^retry: \d+/)
      assert.include(resume.body, `event: end\ndata: {"reason":"unavailable"}`)
      const publish = yield* Effect.promise(async () => {
        const response = await fetch(`${node.url}/events`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ topic: "m", data: "during" })
        })
        return { status: response.status, body: (await response.json()) as { error: string } }
      })
      assert.strictEqual(publish.status, 503)
      assert.strictEqual(publish.body.error, "unavailable")
      // The tail reader retries in the background; the open stream is not ended by the outage.
      yield* Effect.sleep("300 millis")
      assert.strictEqual(open.reconnects, 0, "the open stream stayed open during the outage")
      yield* server.start
      // A fresh Redis is a new epoch: the open stream ends (log-reset), resumes with a reset, then gets new events.
      let after: string | undefined
      for (let i = 0; i < 800 && after === undefined; i++) {
        after = yield* Effect.promise(() => postEvent(node, "after").catch(() => undefined))
        if (after === undefined) yield* Effect.sleep("25 millis")
      }
      assert.isDefined(after, "publishing works again")
      yield* waitUntil("the open stream's client reset to the new epoch", () => open.resets.length > 0, 20_000)
      assert.include(open.resets[0]!, "epoch-mismatch")
      const next = yield* Effect.promise(() => postEvent(node, "next"))
      yield* waitUntil("the client gets new events", () => open.last === next, 20_000)
    }).pipe(Effect.scoped), 60_000)
})
