/**
 * End-to-end delivery through clients nobody on the team wrote: `eventsource@4` and undici's
 * `EventSource` read streams that the server keeps ending (overflow of a small per-connection buffer,
 * and a short max lifetime), reconnect with `Last-Event-ID` and must see every event exactly once,
 * in order, every reconnect caused by a server end. (Lifetime and overflow ends are each proven on
 * their own, deterministically, in behaviour.test.ts.) The log's replay read is made asynchronous (0-4 ms, like `XRANGE`), so the replay/live
 * race is real.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { EventSource as EventSourceNpm } from "eventsource"
import { EventSource as UndiciEventSource } from "undici"
import type * as Event from "../../src/Event.js"
import * as Delivery from "../utils/DeliveryChecker.js"
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
  /** Ids in arrival order. */
  readonly received: Array<string>
  readonly distinct: Set<string>
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
    const clients: Array<ClientStats> = []
    const sources: Array<EventSourceLike> = []
    yield* Effect.addFinalizer(() => Effect.sync(() => sources.forEach((s) => s.close())))
    for (let c = 0; c < CLIENTS; c++) {
      const stats: ClientStats = { received: [], distinct: new Set(), opens: 0, ends: 0, resets: 0, badIds: 0 }
      const source = makeClient(`${url}/events?topic=load`)
      source.addEventListener("open", () => stats.opens++)
      source.addEventListener("end", () => stats.ends++)
      source.addEventListener("reset", () => stats.resets++)
      source.addEventListener("message", (e: { data: string; lastEventId: string }) => {
        // The data is the id the log assigned to the event: the frame's id must be the same.
        if (e.lastEventId !== e.data) stats.badIds++
        stats.received.push(e.lastEventId)
        stats.distinct.add(e.lastEventId)
      })
      clients.push(stats)
      sources.push(source)
    }
    yield* waitFor("every client to open", () => clients.every((c) => c.opens >= 1), 10_000)

    // 10,000 events over ~12 s of wall-clock time (whatever the timers' lateness): a batch every ~10 ms
    // sized to keep pace, and a burst of 150 every 40 batches.
    const { epoch, head } = (yield* bus.stats).log
    const log: Array<Event.EventId> = []
    const started = Date.now()
    let batches = 0
    while (log.length < EVENTS) {
      const due = Math.ceil((EVENTS * (Date.now() - started)) / PUBLISH_MILLIS)
      const size = Math.min(EVENTS - log.length, Math.max(1, due - log.length, ++batches % 40 === 0 ? BURST : 0))
      const inputs: Array<Event.EventInput> = []
      for (let i = 1; i <= size; i++) inputs.push({ topic: "load", data: `${epoch}-${head + log.length + i}` })
      for (const event of yield* bus.publishAll(inputs)) log.push(event.id)
      yield* sleepReal(10)
    }
    const publishedIn = Date.now() - started

    // The bounds below are generous: they wait for events, and only a loaded machine comes near them.
    yield* waitFor("every client to receive every event", () => clients.every((c) => c.distinct.size >= EVENTS), 60_000)
    // Keep the streams cycling a little longer: a late duplicate would show up now. With nothing
    // published they end by lifetime only; wait (bounded) for more of those than clients.
    yield* sleepReal(1_200)
    const stats = yield* waitForEffect("lifetime ends", bus.stats, (s) => s.ends.lifetime > CLIENTS, 30_000)

    const reports = clients.map((c) => Delivery.check(log, c.received))
    const reconnects = clients.map((c) => c.opens - 1)
    const lost = reports.map((r) => r.lost.length)
    const duplicated = reports.map((r) => r.duplicated.length)
    const outOfOrder = reports.map((r) => r.outOfOrder.length)
    console.log(
      `[delivery ${name}] ${CLIENTS} clients × ${EVENTS} events published in ${publishedIn} ms; ` +
        `reconnects per client ${reconnects.join("/")} (total ${reconnects.reduce((a, b) => a + b, 0)}); ` +
        `server ends overflow=${stats.ends.overflow} lifetime=${stats.ends.lifetime}; ` +
        `lost ${lost.join("/")}, duplicated ${duplicated.join("/")}, out of order ${outOfOrder.join("/")}; ` +
        `resets ${clients.map((c) => c.resets).join("/")}, resumes ${stats.resumes.resumed}`
    )
    for (const [i, client] of clients.entries()) {
      assert.isTrue(reports[i]!.ok, Delivery.describe(reports[i]!))
      assert.strictEqual(reports[i]!.received, EVENTS)
      assert.strictEqual(client.badIds, 0, "every event's id is its log id")
      assert.strictEqual(client.resets, 0, "no cursor needed a reset")
      assert.isAtLeast(client.opens - 1, 1, "the server ended the stream (each burst overflows it)")
      // Every reconnect was caused by a server end, announced with `event: end` (the last end may
      // not have been followed by its reconnect yet).
      assert.isAtLeast(client.ends, client.opens - 1, "every reconnect followed an event: end")
      assert.isAtMost(client.ends, client.opens, "every event: end ended a connection")
    }
    // Which cause ended each stream depends on timing; that each was a server end does not.
    assert.isAtLeast(stats.ends.overflow + stats.ends.lifetime, clients.reduce((n, c) => n + c.opens - 1, 0))

    sources.forEach((s) => s.close())
    yield* waitForEffect("subscribers to return to 0", bus.stats, (s) => s.subscribers === 0, 20_000)
  })

describe("SseRoute delivery with real EventSource clients", () => {
  it.scopedLive(
    "eventsource@4: 5 clients × 10,000 events, streams ended by overflow and lifetime: 0 lost, 0 duplicated, 0 out of order",
    () => run("eventsource@4", (url) => new EventSourceNpm(url)),
    120_000
  )

  it.scopedLive(
    "undici EventSource: 5 clients × 10,000 events, streams ended by overflow and lifetime: 0 lost, 0 duplicated, 0 out of order",
    () => run("undici", (url) => new UndiciEventSource(url) as unknown as EventSourceLike),
    120_000
  )
})
