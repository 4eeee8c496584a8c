/**
 * Reconnect storms, with real connections on loopback and virtual time for the waits:
 *
 * - 1,000 streams that the server ends together — by `maxLifetime`, and by a shutdown followed by a
 *   restart on the same log — each reconnected by a browser-like client that waits exactly the
 *   `retry:` its connection was given. The reconnects are replayed in order of their due time, in
 *   100 ms steps of virtual time: each step's connections are opened for real and the test waits
 *   until the server has accepted them and replayed what they missed. No 100 ms window (consecutive,
 *   from the first end) may hold more than 5 % of the reconnects, counting from when each stream
 *   really ended and, as a worst case, as if all had ended in the same millisecond. Each client then holds exactly the
 *   log (test/utils/DeliveryChecker.ts). The server's `Random` is seeded, so the jitter is too.
 * - One client forced through 100 immediate ends (a draining server answers `200`, `retry:` and
 *   `event: end` at once): waiting what it was told, it reconnects no faster than once per second
 *   on average — a browser-like client against the default `retryMin`, and the Effect client
 *   (`SseClient`, on the TestClock) against a server set to the 500 ms floor.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Random from "effect/Random"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as TestServices from "effect/TestServices"
import { createParser } from "eventsource-parser"
import * as Http from "node:http"
import type * as EventLog from "../../src/EventLog.js"
import * as SseClient from "../../src/SseClient.js"
import * as DeliveryChecker from "../utils/DeliveryChecker.js"
import { testSeed } from "../utils/random.js"
import { startServer, type TestServer } from "../utils/server.js"
import { sleepingUntil } from "../utils/testClock.js"
import { waitFor, waitForEffect } from "../utils/sse.js"

const CLIENTS = 1_000
const WINDOW = 100
const MAX_SHARE = 0.05
const RETRY_MIN = 1_000 // the defaults: retryMin 1 s, retryMax 5 s
const RETRY_MAX = 5_000

/** One connection of a browser-like client: what it was told and what it received. */
interface Connection {
  status: number
  retry: number | undefined
  ids: Array<string>
  end: string | undefined
  endedAt: number | undefined
  readonly close: () => void
}

/** Opens one stream the way `EventSource` does, sending `lastEventId` when there is one. */
const open = (url: string, lastEventId: string | undefined, onId: (id: string) => void): Connection => {
  const headers: Record<string, string> = { accept: "text/event-stream" }
  if (lastEventId !== undefined) headers["last-event-id"] = lastEventId
  const req = Http.get(`${url}/events?topic=s`, { headers, agent: false })
  const c: Connection = { status: 0, retry: undefined, ids: [], end: undefined, endedAt: undefined, close: () => req.destroy() }
  const parser = createParser({
    onRetry: (ms) => (c.retry = ms),
    onEvent: (e) => {
      if (e.event === "end" && e.id === undefined) c.end = JSON.parse(e.data).reason
      else if (e.id !== undefined) {
        c.ids.push(e.id)
        onId(e.id)
      }
    }
  })
  const ended = () => (c.endedAt ??= performance.now())
  req.on("error", ended)
  req.on("response", (res) => {
    c.status = res.statusCode ?? 0
    res.setEncoding("utf8")
    res.on("data", (chunk: string) => parser.feed(chunk))
    res.on("end", ended)
    res.on("close", ended)
    res.on("error", ended)
  })
  return c
}

/** A browser-like client: its connections in order, its cursor and every id it received. */
interface Client {
  readonly connections: Array<Connection>
  lastEventId: string | undefined
  readonly received: Array<string>
}

const connect = (client: Client, url: string) => {
  client.connections.push(open(url, client.lastEventId, (id) => {
    client.lastEventId = id
    client.received.push(id)
  }))
}

const last = <A>(items: ReadonlyArray<A>): A => items[items.length - 1]!

/** The most points of `times` in one of the consecutive windows `[k × width, (k + 1) × width)`. */
const busiestBin = (times: ReadonlyArray<number>, width: number): number => {
  const bins = new Map<number, number>()
  for (const t of times) bins.set(Math.floor(t / width), (bins.get(Math.floor(t / width)) ?? 0) + 1)
  return Math.max(...bins.values())
}

/** The most points of `times` that one half-open window of `width` holds, sliding (reported only). */
const busiestWindow = (times: ReadonlyArray<number>, width: number): number => {
  const sorted = [...times].sort((a, b) => a - b)
  let best = 0
  for (let lo = 0, hi = 0; hi < sorted.length; hi++) {
    while (sorted[hi]! - sorted[lo]! >= width) lo++
    best = Math.max(best, hi - lo + 1)
  }
  return best
}

type Mode = "lifetime" | "shutdown and restart"

const storm = (mode: Mode) =>
  Effect.gen(function*() {
    const seed = testSeed()
    const label = `${mode}, seed ${seed} (SLUICE_TEST_SEED=${seed} replays it)`
    let shared: EventLog.EventLog["Type"] | undefined
    const serve = (options: { maxLifetime?: Duration.DurationInput }, scope: Scope.Scope) =>
      startServer({
        route: { heartbeat: "1 hour", retryMin: RETRY_MIN, retryMax: RETRY_MAX, ...options },
        // One log for the first server and its restart, as a shared backend would be.
        wrapLog: (log) => (shared ??= log)
      }).pipe(Effect.withRandom(Random.make(seed)), Scope.extend(scope))

    const scopeA = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scopeA, Exit.void))
    const first: TestServer = yield* serve(mode === "lifetime" ? { maxLifetime: "6 seconds" } : {}, scopeA)
    const log: Array<string> = []
    const publish = (server: TestServer, what: string) =>
      Effect.forEach([1, 2, 3], (i) =>
        Effect.map(server.bus.publish({ topic: "s", data: `${what} ${i}` }), (e) => log.push(`${e.id.epoch}-${e.id.seq}`)))
    // Each client resumes from the start of the log, so it has a cursor from its first connection on.
    yield* publish(first, "before")
    const epoch = (yield* first.bus.stats).log.epoch
    const clients: Array<Client> = Array.from({ length: CLIENTS }, () => ({
      connections: [],
      lastEventId: `${epoch}-0`,
      received: []
    }))
    yield* Effect.addFinalizer(() => Effect.sync(() => clients.forEach((c) => c.connections.forEach((x) => x.close()))))
    const connectStarted = performance.now()
    for (const client of clients) connect(client, first.url)
    yield* waitFor(`${label}: ${CLIENTS} streams with their 3 events`, () => clients.every((c) => c.received.length === 3), 30_000)
    const connectMillis = performance.now() - connectStarted

    // The storm: every stream ends.
    let second = first
    if (mode === "shutdown and restart") {
      yield* Scope.close(scopeA, Exit.void)
      const scopeB = yield* Scope.make()
      yield* Effect.addFinalizer(() => Scope.close(scopeB, Exit.void))
      second = yield* serve({}, scopeB)
    }
    yield* waitFor(`${label}: every stream to end`, () => clients.every((c) => c.connections[0]!.endedAt !== undefined), 30_000)
    const firsts = clients.map((c) => c.connections[0]!)
    const reason = mode === "lifetime" ? "lifetime" : "shutdown"
    assert.deepStrictEqual(new Set(firsts.map((c) => `${c.status} ${c.end}`)), new Set([`200 ${reason}`]), label)
    yield* publish(second, "missed")

    // When each client reconnects: when its stream really ended, plus the retry it was given.
    const ends = firsts.map((c) => c.endedAt!)
    const firstEnd = Math.min(...ends)
    const retries = firsts.map((c) => c.retry!)
    for (const r of retries) assert.isTrue(r >= RETRY_MIN && r <= RETRY_MAX, `${label}: retry ${r}`)
    const due = firsts.map((c, i) => c.endedAt! - firstEnd + retries[i]!)

    // Virtual time: each 100 ms step opens the reconnects due in it, for real, and waits until the
    // server holds them all and each has what it missed.
    const order = clients.map((_, i) => i).sort((a, b) => due[a]! - due[b]!)
    const perStep: Array<number> = []
    const resumedBefore = (yield* second.bus.stats).resumes.resumed
    let next = 0
    for (let step = 0; next < order.length; step++) {
      const batch: Array<number> = []
      while (next < order.length && due[order[next]!]! < (step + 1) * WINDOW) batch.push(order[next++]!)
      perStep.push(batch.length)
      for (const i of batch) connect(clients[i]!, second.url)
      yield* waitForEffect(
        `${label}: step ${step}, ${next} streams`,
        second.bus.stats,
        (s) => s.resumes.resumed === resumedBefore + next && batch.every((i) => clients[i]!.received.length === 6),
        30_000
      )
    }
    const resumes = (yield* second.bus.stats).resumes
    if (mode === "shutdown and restart") {
      // (With lifetimes of 6 s, the first reconnects may have ended again by now.)
      yield* publish(second, "after")
      yield* waitFor(`${label}: the events after the storm`, () => clients.every((c) => c.received.length === 9), 30_000)
    }

    const reports = clients.map((c) => DeliveryChecker.check(log, c.received))
    const bad = reports.filter((r) => !r.ok)
    assert.deepStrictEqual(bad.slice(0, 3).map(DeliveryChecker.describe), [], `${label}: every client holds the log exactly`)
    assert.isTrue(clients.every((c) => c.connections.length === 2 && c.connections[1]!.status === 200))
    // Consecutive 100 ms windows from the first end (the virtual steps). A window sliding to the
    // busiest spot is reported too: with 1,000 independent uniform draws over 4 s it is 3-4 %,
    // and past 5 % too often for a test that must pass every time; the fixed windows never are
    // (a window holds ~25 ± 5; more than 50 is a 1-in-10,000-runs event).
    const realBusiest = busiestBin(due, WINDOW)
    const worstBusiest = busiestBin(retries, WINDOW)
    const sliding = busiestWindow(due, WINDOW)
    const endSpread = Math.max(...ends) - firstEnd
    console.log(
      `[storm] ${label}: ${CLIENTS} streams opened in ${Math.round(connectMillis)} ms, ended within ${Math.round(endSpread)} ms; ` +
        `retry ${Math.min(...retries)}-${Math.max(...retries)} ms; busiest 100 ms window ${realBusiest} reconnects ` +
        `(sliding: ${sliding}) ` +
        `(${(realBusiest / CLIENTS * 100).toFixed(1)} %), ${worstBusiest} (${(worstBusiest / CLIENTS * 100).toFixed(1)} %) had all ` +
        `ended at once; ${perStep.length} steps, at most ${Math.max(...perStep)} per step; resumes ${JSON.stringify(resumes)}; ` +
        `${reports.filter((r) => r.ok).length}/${CLIENTS} clients 0 lost / 0 duplicated / 0 out of order`
    )
    assert.isAtMost(realBusiest, CLIENTS * MAX_SHARE, label)
    assert.isAtMost(worstBusiest, CLIENTS * MAX_SHARE, label)
    assert.strictEqual(resumes.resumed, CLIENTS * (mode === "lifetime" ? 2 : 1), `${label}: every reconnect resumed, no reset`)
  })

const ENDS = 100

describe("reconnect storm", () => {
  it.scopedLive("1,000 streams ended by their lifetime reconnect spread out: no 100 ms window over 5 %", () => storm("lifetime"), 120_000)

  it.scopedLive(
    "1,000 streams ended by a shutdown reconnect to the restarted server spread out: no 100 ms window over 5 %",
    () => storm("shutdown and restart"),
    120_000
  )

  it.scopedLive("a browser-like client forced through 100 immediate ends waits its retry each time: ≥ 1 s on average", () =>
    Effect.gen(function*() {
      const { route, url } = yield* startServer({ route: { heartbeat: "1 hour" } })
      yield* route.drain // from now on every stream request is answered 200, retry:, event: end at once
      const client: Client = { connections: [], lastEventId: undefined, received: [] }
      let virtual = 0
      for (let k = 0; k <= ENDS; k++) {
        connect(client, url)
        yield* waitFor(`end ${k}`, () => last(client.connections).endedAt !== undefined)
        const c = last(client.connections)
        assert.deepStrictEqual([c.status, c.end], [200, "shutdown"])
        if (k < ENDS) virtual += c.retry!
      }
      const mean = virtual / ENDS
      console.log(`[storm] browser-like client, ${ENDS} immediate ends: ${(virtual / 1000).toFixed(1)} s of waits, ${Math.round(mean)} ms per reconnect`)
      assert.isAtLeast(Math.min(...client.connections.map((c) => c.retry!)), 1_000)
      assert.isAtLeast(mean, 1_000)
    }), 60_000)

  it.scoped("the Effect client against a server at the 500 ms retry floor, forced through 100 immediate ends: ≥ 1 s on average", () =>
    Effect.gen(function*() {
      // The server runs on real time; the client on the TestClock, moved only once it sleeps.
      const { route, url } = yield* TestServices.provideLive(startServer({ route: { heartbeat: "1 hour", retryMin: 500, retryMax: 500 } }))
      yield* TestServices.provideLive(route.drain)
      const seed = testSeed()
      const seen: Array<{ at: number; item: SseClient.Item | SseClient.Status }> = []
      const fiber = yield* SseClient.streamWithStatus(`${url}/events`, { idleTimeout: Duration.infinity }).pipe(
        Stream.runForEach((item) => Effect.map(Clock.currentTimeMillis, (at) => void seen.push({ at, item }))),
        Effect.provide(FetchHttpClient.layer),
        Effect.withRandom(Random.make(seed)),
        Effect.fork
      )
      const disconnects = () => seen.flatMap((s) => s.item._tag === "Disconnected" ? [{ at: s.at, ...s.item }] : [])
      for (let k = 1; k <= ENDS; k++) {
        yield* waitFor(`disconnect ${k}`, () => disconnects().length >= k, 10_000)
        const { delay } = disconnects()[k - 1]!
        yield* sleepingUntil((yield* TestClock.currentTimeMillis) + delay)
        yield* TestClock.adjust(delay)
      }
      yield* waitFor("connection 101", () => seen.filter((s) => s.item._tag === "Connected").length === ENDS + 1, 10_000)
      yield* Fiber.interrupt(fiber)
      const connects = seen.filter((s) => s.item._tag === "Connected").map((s) => s.at)
      const ends = disconnects().slice(0, ENDS)
      assert.isTrue(ends.every((d) => d.cause._tag === "End" && d.delay >= 500))
      const mean = (connects[ENDS]! - connects[0]!) / ENDS
      console.log(
        `[storm] SseClient, seed ${seed}, ${ENDS} immediate ends at retry 500 ms: ${(connects[ENDS]! / 1000).toFixed(1)} s (test clock), ` +
          `${Math.round(mean)} ms per reconnect; first waits ${ends.slice(0, 5).map((d) => d.delay).join(", ")} ms`
      )
      assert.isAtLeast(mean, 1_000)
    }), 60_000)
})
