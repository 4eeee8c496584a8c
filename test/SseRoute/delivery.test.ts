/**
 * End-to-end delivery through clients nobody on the team wrote: `eventsource@5` and undici's
 * `EventSource` read streams that the server keeps ending (overflow of a small per-connection buffer,
 * and a short max lifetime), reconnect with `Last-Event-ID` and must see every event exactly once,
 * in order. The log's replay read is made asynchronous (0-4 ms, like `XRANGE`), so the replay/live
 * race is real.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { EventSource as EventSourceV5 } from "eventsource"
import { EventSource as UndiciEventSource } from "undici"
import type * as Event from "../../src/Event.js"
import { DeliveryChecker } from "../utils/sseChecker.js"
import { sleepReal, waitFor, waitForEffect } from "../utils/sse.js"
import { slowReads, startServer } from "../utils/server.js"

const EVENTS = 10_000
const CLIENTS = 5
const BURST = 150 // > maxEvents: every connected client overflows
const PER_CONNECTION = 100
const PUBLISH_MILLIS = 12_000

interface EventSourceLike {
  addEventListener(type: string, listener: (event: any) => void): void
  close(): void
}

interface ClientStats {
  readonly checker: DeliveryChecker
  opens: number
  ends: number
  resets: number
  badIds: number
}

const run = (name: string, makeClient: (url: string) => EventSourceLike) =>
  Effect.gen(function*() {
    const { bus, url } = yield* startServer({
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
    const epoch = (yield* bus.stats).log.epoch
    const clients: Array<ClientStats> = []
    const sources: Array<EventSourceLike> = []
    yield* Effect.addFinalizer(() => Effect.sync(() => sources.forEach((s) => s.close())))
    for (let c = 0; c < CLIENTS; c++) {
      const stats: ClientStats = { checker: new DeliveryChecker(EVENTS), opens: 0, ends: 0, resets: 0, badIds: 0 }
      const source = makeClient(`${url}/events?topic=load`)
      source.addEventListener("open", () => stats.opens++)
      source.addEventListener("end", () => stats.ends++)
      source.addEventListener("reset", () => stats.resets++)
      source.addEventListener("message", (e: { data: string; lastEventId: string }) => {
        const n = Number(e.data)
        if (e.lastEventId !== `${epoch}-${n}`) stats.badIds++
        stats.checker.record(n)
      })
      clients.push(stats)
      sources.push(source)
    }
    yield* waitFor("every client to open", () => clients.every((c) => c.opens >= 1), 10_000)

    // 10,000 events over ~12 s of wall-clock time (whatever the timers' lateness): a batch every ~10 ms
    // sized to keep pace, and a burst of 150 every 40 batches.
    const started = Date.now()
    let next = 1
    let batches = 0
    while (next <= EVENTS) {
      const due = Math.ceil((EVENTS * (Date.now() - started)) / PUBLISH_MILLIS)
      const size = Math.min(EVENTS - next + 1, Math.max(1, due - next + 1, ++batches % 40 === 0 ? BURST : 0))
      const inputs: Array<Event.EventInput> = []
      for (let i = 0; i < size; i++) inputs.push({ topic: "load", data: String(next++) })
      yield* bus.publishAll(inputs)
      yield* sleepReal(10)
    }
    const publishedIn = Date.now() - started

    yield* waitFor("every client to receive every event", () => clients.every((c) => c.checker.complete), 20_000)
    // Keep the streams cycling a little longer: a late duplicate would show up now.
    yield* sleepReal(1_200)
    const stats = yield* bus.stats

    const reconnects = clients.map((c) => c.opens - 1)
    const lost = clients.map((c) => c.checker.lost)
    const duplicated = clients.map((c) => c.checker.duplicates)
    const outOfOrder = clients.map((c) => c.checker.outOfOrder)
    console.log(
      `[delivery ${name}] ${CLIENTS} clients × ${EVENTS} events published in ${publishedIn} ms; ` +
        `reconnects per client ${reconnects.join("/")} (total ${reconnects.reduce((a, b) => a + b, 0)}); ` +
        `server ends overflow=${stats.ends.overflow} lifetime=${stats.ends.lifetime}; ` +
        `lost ${lost.join("/")}, duplicated ${duplicated.join("/")}, out of order ${outOfOrder.join("/")}; ` +
        `resets ${clients.map((c) => c.resets).join("/")}, resumes ${stats.resumes.resumed}`
    )
    for (const client of clients) {
      assert.deepStrictEqual(client.checker.summary(), { received: EVENTS, lost: 0, duplicates: 0, outOfOrder: 0 })
      assert.strictEqual(client.badIds, 0, "every event's id is its log id")
      assert.strictEqual(client.resets, 0, "no cursor needed a reset")
      assert.isAtLeast(client.opens - 1, 8, "the server ended the stream many times")
      assert.isAtLeast(client.ends, client.opens - 1, "every end was announced with event: end")
    }
    assert.isAbove(stats.ends.overflow, CLIENTS, "streams ended by overflow")
    assert.isAbove(stats.ends.lifetime, CLIENTS, "streams ended by max lifetime")

    sources.forEach((s) => s.close())
    yield* waitForEffect("subscribers to return to 0", bus.stats, (s) => s.subscribers === 0, 5_000)
  })

describe("SseRoute delivery with real EventSource clients", () => {
  it.scopedLive(
    "eventsource@5: 5 clients × 10,000 events, streams ended by overflow and lifetime: 0 lost, 0 duplicated, 0 out of order",
    () => run("eventsource@5", (url) => new EventSourceV5(url)),
    40_000
  )

  it.scopedLive(
    "undici EventSource: 5 clients × 10,000 events, streams ended by overflow and lifetime: 0 lost, 0 duplicated, 0 out of order",
    () => run("undici", (url) => new UndiciEventSource(url) as unknown as EventSourceLike),
    40_000
  )
})
