/**
 * Clients that go away at every phase of a request, by FIN (`socket.end()`) and by RST
 * (`socket.resetAndDestroy()`), over raw `node:net` sockets: 1,000 randomized cycles, then nothing
 * is left behind — no subscriber, no connection, no socket, no timer.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Net from "node:net"
import type * as Event from "../../src/Event.js"
import { seeded, testSeed } from "../utils/random.js"
import { slowReads, startServer } from "../utils/server.js"
import { activeTimeouts, connect, rawGet, sleepReal, until, waitFor, waitForEffect } from "../utils/sse.js"

const CYCLES = 1_000
const CONCURRENCY = 32
const PRELOAD = 4_000 // 1 KiB each: a replay from the start (~4 MiB) is more than loopback buffers absorb

type Phase = "head-partial" | "head-sent" | "registered" | "replay" | "live"
type Close = "fin" | "rst"
const PHASES: ReadonlyArray<Phase> = ["head-partial", "head-sent", "registered", "replay", "live"]

const activeSockets = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length

/** Collects what a raw socket receives. */
const received = (socket: Net.Socket) => {
  const state = { bytes: 0, text: "", closed: false }
  socket.on("data", (chunk: Buffer) => {
    state.bytes += chunk.byteLength
    if (state.text.length < 4096) state.text += chunk.toString("latin1")
  })
  socket.on("close", () => {
    state.closed = true
  })
  socket.on("error", () => {})
  return state
}

describe("SseRoute aborts", () => {
  it.scopedLive("1,000 randomized aborts at every phase, by FIN and by RST, leave nothing behind", () =>
    Effect.gen(function*() {
      const rng = seeded(testSeed())
      const seed = `seed ${rng.seed} (SLUICE_TEST_SEED=${rng.seed} replays the plan)`
      // Replay reads take 5-15 ms of real time: a window between registration and the first write.
      const readStarted = new Map<number, () => void>()
      const { bus, port, route } = yield* startServer({
        bus: { log: { maxEvents: 100_000 } },
        route: { maxReplay: 100_000, heartbeat: "200 millis", writeDeadline: "500 millis" },
        wrapLog: slowReads(15, { minMillis: 5, onRead: (after) => readStarted.get(after)?.(), random: rng.next })
      })
      const payload = "x".repeat(1024)
      const preload: Array<Event.EventInput> = []
      for (let i = 0; i < PRELOAD; i++) preload.push({ topic: "big", data: payload })
      yield* bus.publishAll(preload)
      const epoch = (yield* bus.stats).log.epoch

      const timeoutsBefore = activeTimeouts()
      const socketsBefore = activeSockets()

      // Live traffic for the whole run.
      let publishing = true
      const publisher = Effect.gen(function*() {
        while (publishing) {
          yield* bus.publishAll([{ topic: "live", data: "a" }, { topic: "live", data: "b" }])
          yield* sleepReal(2)
        }
      })
      const publisherFiber = yield* Effect.fork(publisher)

      const sockets = new Set<Net.Socket>()
      yield* Effect.addFinalizer(() => Effect.sync(() => sockets.forEach((s) => s.destroy())))
      const counts: Record<string, number> = {}
      let finNotClosed = 0
      let noRead = 0
      let registeredGotBytes = 0
      let registeredCursor = 1_000 // replay cycles use cursors below 500: each read is told apart by its cursor

      const cycle = (i: number) =>
        Effect.promise(async () => {
          const phase = PHASES[Math.floor(rng.next() * PHASES.length)]!
          const close: Close = rng.next() < 0.5 ? "fin" : "rst"
          counts[`${phase}/${close}`] = (counts[`${phase}/${close}`] ?? 0) + 1
          const socket = await connect(port)
          sockets.add(socket)
          const got = received(socket)
          const abort = () => (close === "fin" ? socket.end() : socket.resetAndDestroy())
          switch (phase) {
            case "head-partial": {
              // The server never gets a complete request: the handler never runs.
              const head = rawGet("/events?topic=live")
              socket.write(head.slice(0, 1 + Math.floor(rng.next() * (head.length - 2))))
              abort()
              break
            }
            case "head-sent": {
              // The request is complete, the client is gone in the same tick.
              socket.write(rawGet("/events?topic=live"))
              abort()
              break
            }
            case "registered": {
              // Abort once the subscriber is registered and its replay read started: before any byte.
              const after = registeredCursor
              registeredCursor = registeredCursor + 1 < PRELOAD ? registeredCursor + 1 : 1_000
              let reading = false
              readStarted.set(after, () => {
                reading = true
              })
              socket.write(rawGet("/events?topic=big", { "Last-Event-ID": `${epoch}-${after}` }))
              if (!(await until(() => reading, 5_000))) noRead++
              readStarted.delete(after)
              if (got.bytes > 0) registeredGotBytes++
              abort()
              break
            }
            case "replay": {
              // Far behind: a ~4 MiB replay to a client that reads a little, then stops reading, so the
              // server is parked mid-replay on 'drain' when the client goes away.
              const after = Math.floor(rng.next() * 200)
              const stopAt = 1 + Math.floor(rng.next() * 200_000)
              socket.write(rawGet("/events?topic=big", { "Last-Event-ID": `${epoch}-${after}` }))
              await until(() => got.bytes >= stopAt || got.closed, 5_000)
              socket.pause()
              await new Promise((r) => setTimeout(r, Math.floor(rng.next() * 10)))
              abort()
              break
            }
            case "live": {
              const events = 1 + Math.floor(rng.next() * 5)
              socket.write(rawGet("/events?topic=live"))
              await until(() => count(got.text, "\ndata: ") >= events || got.closed, 5_000)
              abort()
              break
            }
          }
          if (close === "fin") {
            // A half-closed client keeps reading: the server must close its side too.
            socket.resume()
            if (!(await until(() => got.closed, 10_000))) finNotClosed++
          }
          socket.destroy()
          sockets.delete(socket)
              if (i % 100 === 0) await new Promise((r) => setImmediate(r))
        })

      const started = Date.now()
      yield* Effect.forEach(Array.from({ length: CYCLES }, (_, i) => i), cycle, { concurrency: CONCURRENCY, discard: true })
      const elapsed = Date.now() - started
      publishing = false
      yield* publisherFiber.await

      const stats = yield* waitForEffect(
        "subscribers and connections to return to 0",
        Effect.zip(bus.stats, route.connections),
        ([s, c]) => s.subscribers === 0 && c === 0,
        5_000
      ).pipe(Effect.map(([s]) => s))
      yield* waitFor("client and server sockets to close", () => activeSockets() <= socketsBefore, 5_000)
      // The route's interval and the bus's sweep timer were there before; nothing else may remain.
      yield* waitFor("timers to return to the baseline", () => activeTimeouts() <= timeoutsBefore, 5_000)
      console.log(
        `[aborts] ${seed}: ${CYCLES} cycles in ${elapsed} ms (${JSON.stringify(counts)}); ` +
          `ends ${JSON.stringify(stats.ends)}; bufferedEvents ${stats.bufferedEvents}; ` +
          `timers ${timeoutsBefore} -> ${activeTimeouts()}; sockets ${socketsBefore} -> ${activeSockets()}`
      )
      assert.strictEqual(finNotClosed, 0, `the server closed every half-closed connection; ${seed}`)
      assert.strictEqual(noRead, 0, `every registered-phase request reached its replay read; ${seed}`)
      assert.strictEqual(registeredGotBytes, 0, `registered-phase aborts came before the first byte; ${seed}`)
      assert.strictEqual(stats.subscribers, 0, seed)
      assert.strictEqual(stats.bufferedEvents, 0, seed)
      assert.strictEqual(stats.bufferedBytes, 0, seed)
      // Every request that got past the head registered a subscriber, and each one was released.
      const registered = ["registered", "replay", "live"].reduce(
        (n, phase) => n + (counts[`${phase}/fin`] ?? 0) + (counts[`${phase}/rst`] ?? 0),
        0
      )
      assert.isAtLeast(stats.ends.closed, registered, seed)
      for (const phase of PHASES) {
        assert.isAbove((counts[`${phase}/fin`] ?? 0) + (counts[`${phase}/rst`] ?? 0), 100, `phase ${phase} ran; ${seed}`)
      }
    }), 60_000)
})

const count = (text: string, needle: string): number => {
  let n = 0
  let at = text.indexOf(needle)
  while (at !== -1) {
    n++
    at = text.indexOf(needle, at + needle.length)
  }
  return n
}
