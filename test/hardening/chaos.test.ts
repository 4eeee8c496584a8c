/**
 * Chaos delivery: 5 real `eventsource` clients read 50,000 events published at ≥ 2 events/ms while
 * everything around them breaks, and each must end with the whole acknowledged log: 0 lost, 0
 * duplicated, 0 out of order, no reset.
 *
 * - The server ends streams: a per-connection buffer of 1,000 events (500 on Redis; a burst of
 *   1,500-3,000 every 4 s overflows it, as does a resume that falls too far behind) and a max
 *   lifetime of 2 s.
 * - Every connection goes through a TCP fault proxy of our own (test/utils/faultProxy.ts): every
 *   200-600 ms, a random live connection's client socket is ended (FIN), reset (RST) or cut in the
 *   middle of an event, the three in turn.
 * - On Redis: 3 sluice node processes on one Redis, each behind its own fault proxy; every
 *   (re)connect goes to a random live node, and one node is SIGKILLed halfway through.
 *
 * The plan (faults, nodes, bursts) comes from the seed printed with the figures (`SLUICE_TEST_SEED`
 * replays it). After the publish the faults stop and the streams keep cycling until more than
 * `CLIENTS` of them ended by lifetime, so a late duplicate would show up.
 *
 * The figures include what each client had received when the publish ended. On memory that is
 * nearly everything. On Redis, on a loaded 2-core machine, it was a few percent: each resume first
 * counts its whole backlog in the log, then replays it 256 events per read, and the 2.5 events/ms
 * arriving meanwhile overflow the buffer before it catches up; the clients catch up once the
 * publish stops. The assertions are the delivery guarantee (0 lost, 0 duplicated, 0 out of order,
 * no reset), not that throughput.
 *
 * Runtime on a loaded 2-core machine: memory about 25 s, Redis 50-65 s (the publish takes 20 s).
 */
import { afterAll, assert, beforeEach, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { EventSource } from "eventsource"
import type * as Event from "../../src/Event.js"
import * as RedisLog from "../../src/EventLog/Redis.js"
import * as Delivery from "../utils/DeliveryChecker.js"
import { type FaultProxy, injectRandomly, startFaultProxy } from "../utils/faultProxy.js"
import { type Node, startNode } from "../utils/nodes.js"
import { seeded, testSeed } from "../utils/random.js"
import { deletePrefixes, REDIS_URL, requireRedis, testPrefix } from "../utils/redis.js"
import { startServer } from "../utils/server.js"
import { sleepReal, waitFor } from "../utils/sse.js"

const EVENTS = 50_000
const CLIENTS = 5
/** Events per millisecond the publisher keeps pace with (≥ 2 is asserted on what it achieved). */
const RATE = 2.5
const BURST = 1_500 // > PER_CONNECTION: a burst overflows every connection it reaches
const PER_CONNECTION = 1_000
/**
 * On Redis, below the 1,000 events a node's tail reads at once: a burst reaches the nodes in reads
 * of 1,000, and each of those overflows every subscriber it reaches (at 1,000 a read would just fit).
 */
const REDIS_PER_CONNECTION = 500
const TOPIC = "chaos"

/** One `eventsource` client whose every (re)connect goes to `pick()`'s proxy. */
class Client {
  readonly received: Array<string | Delivery.ResetMark> = []
  last: string
  opens = 0
  errors = 0
  /** The data of every `reset` event (its reason, for the assertion message). */
  readonly resets: Array<string> = []
  readonly source: EventSource

  constructor(start: string, pick: () => string) {
    this.last = start
    this.source = new EventSource(`${pick()}/events?topic=${TOPIC}&lastEventId=${start}`, {
      fetch: (input, init) => {
        const url = new URL(String(input))
        url.port = new URL(pick()).port
        return fetch(url, init)
      }
    })
    this.source.onopen = () => this.opens++
    this.source.onerror = () => this.errors++
    this.source.onmessage = (e) => {
      this.received.push(e.lastEventId)
      this.last = e.lastEventId
    }
    this.source.addEventListener("reset", (e) => {
      this.received.push(Delivery.reset(e.lastEventId))
      this.resets.push(`${e.data} (cursor ${this.last})`)
      this.last = e.lastEventId
    })
  }
}

/** Publishes `EVENTS` events at `RATE` per ms in batches every ~5 ms, with a burst every 4 s (from 2 s on). */
const publishAll = (
  random: () => number,
  append: (inputs: ReadonlyArray<Event.EventInput>) => Effect.Effect<ReadonlyArray<Event.Event>>,
  halfway: () => Effect.Effect<void> = () => Effect.void
) =>
  Effect.gen(function*() {
    const log: Array<string> = []
    const started = Date.now()
    let nextBurst = 2_000
    let half = false
    while (log.length < EVENTS) {
      const elapsed = Date.now() - started
      const due = Math.ceil(RATE * elapsed)
      let burst = 0
      if (elapsed >= nextBurst) {
        burst = BURST + Math.floor(random() * BURST)
        nextBurst += 4_000
      }
      const size = Math.min(EVENTS - log.length, Math.max(1, due - log.length, burst))
      const inputs = Array.from({ length: size }, (_, i) => ({ topic: TOPIC, data: String(log.length + i) }))
      for (const event of yield* append(inputs)) log.push(`${event.id.epoch}-${event.id.seq}`)
      if (!half && log.length >= EVENTS / 2) {
        half = true
        yield* halfway()
      }
      yield* sleepReal(5)
    }
    return { log, millis: Date.now() - started }
  })

interface Figures {
  readonly name: string
  readonly seed: number
  readonly log: ReadonlyArray<string>
  readonly publishMillis: number
  /** From the end of the publish to every client holding the last event. */
  readonly catchUpMillis: number
  /** Events each client had received when the publish ended. */
  readonly duringPublish: ReadonlyArray<number>
  readonly clients: ReadonlyArray<Client>
  readonly proxies: ReadonlyArray<FaultProxy>
  readonly ends: Readonly<Record<string, number>>
}

/**
 * After the publish: waits for every client to reach the end of the log, stops the faults, and keeps
 * the streams cycling until more than `CLIENTS` of them ended by lifetime (with nothing published
 * they end by lifetime only; a late duplicate would show up now). Returns the server ends.
 */
const settle = (
  clients: ReadonlyArray<Client>,
  log: ReadonlyArray<string>,
  stopFaults: () => void,
  ends: Effect.Effect<Record<string, number>>
) =>
  Effect.gen(function*() {
    const done = Date.now()
    const duringPublish = clients.map((c) => c.received.length)
    const last = log[log.length - 1]!
    yield* waitFor("every client to reach the end of the log", () => clients.every((c) => c.last === last), 90_000)
    const catchUpMillis = Date.now() - done
    stopFaults()
    const before = (yield* ends).lifetime ?? 0
    let after = before
    while (after <= before + CLIENTS) {
      yield* sleepReal(100)
      after = (yield* ends).lifetime ?? 0
      assert.isBelow(Date.now() - done - catchUpMillis, 20_000, "streams keep ending by lifetime once nothing is published")
    }
    return { catchUpMillis, duringPublish, ends: yield* ends }
  })

/** Checks every client (each has reached the end of the log) and prints the figures. */
const verify = (figures: Figures) =>
  Effect.gen(function*() {
    const { clients, log, proxies } = figures
    const reports = clients.map((c) => Delivery.check(log, c.received))
    const faults = { fin: 0, rst: 0, midEvent: 0, cuts: 0 }
    for (const proxy of proxies) {
      faults.fin += proxy.counts.fin
      faults.rst += proxy.counts.rst
      faults.midEvent += proxy.counts.midEvent
      faults.cuts += proxy.cuts()
    }
    const rate = log.length / figures.publishMillis
    console.log(
      `[chaos ${figures.name}] seed ${figures.seed}: ${CLIENTS} clients × ${log.length} events published in ${figures.publishMillis} ms ` +
        `(${rate.toFixed(2)}/ms), every client at the end ${figures.catchUpMillis} ms later; received during the publish ${figures.duringPublish.join("/")}; connections per client ${clients.map((c) => c.opens).join("/")}, errors ${clients.map((c) => c.errors).join("/")}; ` +
        `proxy faults fin=${faults.fin} rst=${faults.rst} midEvent=${faults.midEvent} (cut mid-event ${faults.cuts}); ` +
        `server ends ${JSON.stringify(figures.ends)}; ` +
        `lost ${reports.map((r) => r.lost.length).join("/")}, duplicated ${reports.map((r) => r.duplicated.length).join("/")}, ` +
        `out of order ${reports.map((r) => r.outOfOrder.length).join("/")}, resets ${reports.map((r) => r.resets).join("/")}`
    )
    const context = `seed ${figures.seed} (SLUICE_TEST_SEED=${figures.seed} replays it)`
    assert.strictEqual(log.length, EVENTS)
    assert.isAtLeast(rate, 2, `published at ≥ 2 events/ms; ${context}`)
    for (const [i, report] of reports.entries()) {
      assert.isTrue(report.ok, `client ${i}: ${Delivery.describe(report)}; ${context}`)
      assert.strictEqual(report.resets, 0, `client ${i} was never reset: ${clients[i]!.resets.join("; ")}; ${context}`)
      assert.strictEqual(report.received, EVENTS, `client ${i}; ${context}`)
    }
    for (const kind of ["fin", "rst", "cuts"] as const) assert.isAbove(faults[kind], 0, `some ${kind} faults; ${context}`)
    assert.isAbove(figures.ends.overflow ?? 0, 0, `some streams overflowed; ${context}`)
  })

/** A fault every 200-600 ms on a random live connection of any proxy: FIN, RST or a mid-event cut. */
const faultPlan = (random: () => number) => ({ random, kinds: ["fin", "rst", "midEvent"] as const, minMillis: 200, maxMillis: 600 })

describe("chaos delivery", () => {
  it.live(
    `memory: ${CLIENTS} eventsource clients × ${EVENTS} events at ≥ 2/ms through a fault proxy (FIN, RST, mid-event), overflow and lifetime ends: 0 lost, 0 duplicated, 0 out of order`,
    () =>
      Effect.gen(function*() {
        const seed = testSeed()
        const random = seeded(seed).next
        const { bus, port } = yield* startServer({
          bus: { log: { maxEvents: 2 * EVENTS }, maxReplay: EVENTS },
          route: {
            maxEvents: PER_CONNECTION,
            maxReplay: EVENTS,
            retryMin: "500 millis",
            retryMax: "700 millis",
            maxLifetime: "2 seconds",
            heartbeat: "1 second"
          },
          tracer: false
        })
        const proxy = yield* startFaultProxy(port)
        const stopFaults = yield* injectRandomly([proxy], faultPlan(random))
        const { epoch, head } = (yield* bus.stats).log
        const clients = Array.from({ length: CLIENTS }, () => new Client(`${epoch}-${head}`, () => proxy.url))
        yield* Effect.addFinalizer(() => Effect.sync(() => clients.forEach((c) => c.source.close())))
        yield* waitFor("every client to open", () => clients.every((c) => c.opens > 0), 10_000)
        const published = yield* publishAll(random, (inputs) => Effect.orDie(bus.publishAll(inputs)))
        const settled = yield* settle(clients, published.log, stopFaults, Effect.map(bus.stats, (s) => ({ ...s.ends })))
        yield* verify({ name: "memory", seed, log: published.log, publishMillis: published.millis, clients, proxies: [proxy], ...settled })
      }).pipe(Effect.scoped),
    120_000
  )

  describe("Redis", () => {
    beforeEach(requireRedis)
    const prefix = testPrefix("chaos")
    afterAll(() => requireRedis().then(() => deletePrefixes([prefix]), () => undefined))

    it.live(
      `3 node processes: ${CLIENTS} eventsource clients × ${EVENTS} events at ≥ 2/ms, a random node per reconnect through fault proxies, one node SIGKILLed: 0 lost, 0 duplicated, 0 out of order`,
      () =>
        Effect.gen(function*() {
          const seed = testSeed()
          const random = seeded(seed).next
          const env = {
            SLUICE_SSE_MAX_EVENTS: String(REDIS_PER_CONNECTION),
            SLUICE_SSE_MAX_REPLAY: String(EVENTS),
            SLUICE_BUS_MAX_REPLAY: String(EVENTS),
            SLUICE_SSE_RETRY_MIN: "500 millis",
            SLUICE_SSE_RETRY_MAX: "700 millis",
            SLUICE_SSE_MAX_LIFETIME: "2 seconds",
            SLUICE_SSE_HEARTBEAT: "1 second"
          }
          const nodes: ReadonlyArray<Node> = yield* Effect.all([0, 1, 2].map((i) => startNode(i, { prefix, env })), {
            concurrency: "unbounded"
          })
          const proxies = yield* Effect.all(nodes.map((n) => startFaultProxy(n.port)))
          const stopFaults = yield* injectRandomly(proxies, faultPlan(random))
          const pick = () => {
            const alive = proxies.filter((_, i) => nodes[i]!.alive)
            return alive[Math.floor(random() * alive.length)]!.url
          }
          const log = yield* RedisLog.make({ url: REDIS_URL, prefix, maxEvents: 2 * EVENTS })
          const head = yield* Effect.orDie(log.head)
          const clients = Array.from({ length: CLIENTS }, () => new Client(`${head.epoch}-${head.seq}`, pick))
          yield* Effect.addFinalizer(() => Effect.sync(() => clients.forEach((c) => c.source.close())))
          yield* waitFor("every client to open", () => clients.every((c) => c.opens > 0), 10_000)
          const published = yield* publishAll(
            random,
            (inputs) => Effect.orDie(log.append(inputs)),
            () =>
              Effect.sync(() => {
                nodes[2]!.alive = false
                nodes[2]!.child.kill("SIGKILL")
              })
          )
          // The ends of the nodes still alive, summed.
          const ends = Effect.promise(async () => {
            const sum: Record<string, number> = {}
            for (const node of nodes.filter((n) => n.alive)) {
              const stats = (await fetch(`${node.url}/stats`).then((r) => r.json())) as { ends: Record<string, number> }
              for (const [reason, n] of Object.entries(stats.ends)) sum[reason] = (sum[reason] ?? 0) + n
            }
            return sum
          })
          const settled = yield* settle(clients, published.log, stopFaults, ends)
          yield* verify({ name: "redis", seed, log: published.log, publishMillis: published.millis, clients, proxies, ...settled })
        }).pipe(Effect.scoped),
      150_000
    )
  })
})
