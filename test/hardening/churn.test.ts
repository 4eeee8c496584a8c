/**
 * Churn: 10,000 seeded connect/disconnect cycles of mixed kinds against a real server on loopback —
 * clean close (FIN), RST, abort before the response, abort between registration and the first
 * write, pipelined requests, WebSocket upgrade headers, HEAD — 32 at a time. Afterwards nothing is
 * left: no subscriber, no connection the route or the HTTP server still counts, no socket and no
 * timer beyond the baseline, and the heap after GC within 10 % of where it started (the log is
 * filled to capacity first, so retained events are not growth). test/SseRoute/abort.test.ts
 * covers the phases of one stream request in depth; this suite is about volume and the mix.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Net from "node:net"
import { heldBytes, mib } from "../utils/memory.js"
import { seeded, testSeed } from "../utils/random.js"
import { slowReads, startServer } from "../utils/server.js"
import { activeTimeouts, connect, rawGet, waitFor, waitForEffect } from "../utils/sse.js"

const CYCLES = 10_000
const WARM_UP = 1_000
const CONCURRENCY = 32
const LOG = 2_000

const KINDS = ["clean", "rst", "before-response", "registered", "pipelined", "upgrade", "head"] as const
type Kind = (typeof KINDS)[number]

const UPGRADE = {
  Connection: "Upgrade",
  Upgrade: "websocket",
  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
  "Sec-WebSocket-Version": "13"
}

const activeSockets = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length

/**
 * What a raw socket received, and `until(done)`: resolves `true` at the first socket event (or
 * `poke()`) after which `done()` holds, `false` after `timeoutMillis`. Event-driven: 32 cycles
 * polling every millisecond would cost more CPU than the server under test.
 */
const received = (socket: Net.Socket) => {
  const state = { text: "", closed: false }
  let check: (() => void) | undefined
  const poke = () => check?.()
  socket.setEncoding("latin1")
  socket.on("data", (chunk: string) => {
    if (state.text.length < 4096) state.text += chunk
    poke()
  })
  socket.on("close", () => {
    state.closed = true
    poke()
  })
  socket.on("error", () => {})
  const until = (done: () => boolean, timeoutMillis = 10_000): Promise<boolean> =>
    new Promise((resolve) => {
      if (done()) return resolve(true)
      const timer = setTimeout(() => {
        check = undefined
        resolve(false)
      }, timeoutMillis)
      check = () => {
        if (!done()) return
        clearTimeout(timer)
        check = undefined
        resolve(true)
      }
    })
  return { state, until, poke }
}

const OPENED = ": sluice\n\n"

describe("churn", () => {
  it.scopedLive("10,000 mixed connect/disconnect cycles leave no subscriber, socket, timer or heap behind", () =>
    Effect.gen(function*() {
      const rng = seeded(testSeed())
      const seed = `seed ${rng.seed} (SLUICE_TEST_SEED=${rng.seed} replays the plan)`
      // Replay reads take 1-4 ms of real time: the window between registration and the first write.
      const reading = new Map<number, () => void>()
      const { bus, port, route, server } = yield* startServer({
        bus: { log: { maxEvents: LOG } },
        route: { heartbeat: "200 millis", writeDeadline: "500 millis" },
        wrapLog: slowReads(4, { minMillis: 1, onRead: (after) => reading.get(after)?.(), random: rng.next })
      })
      // The log at capacity, so that what it retains does not change.
      yield* bus.publishAll(Array.from({ length: LOG + 10 }, (_, i) => ({ topic: "t", data: `event ${i}` })))
      const { epoch, head } = (yield* bus.stats).log

      const counts: Record<string, number> = {}
      const millis: Record<string, number> = {}
      const problems: Array<string> = []
      let cursor = 0 // each in-flight "registered" cycle resumes from a cursor of its own
      const sockets = new Set<Net.Socket>()
      yield* Effect.addFinalizer(() => Effect.sync(() => sockets.forEach((s) => s.destroy())))

      const cycle = (i: number) =>
        Effect.promise(async () => {
          const kind: Kind = KINDS[rng.int(KINDS.length)]!
          counts[kind] = (counts[kind] ?? 0) + 1
          const began = performance.now()
          const socket = await connect(port)
          sockets.add(socket)
          const { poke, state: got, until } = received(socket)
          const opened = () => until(() => got.text.includes(OPENED) || got.closed)
          switch (kind) {
            case "clean": {
              socket.write(rawGet("/events?topic=t"))
              if (!(await opened())) problems.push(`${i} clean: never opened`)
              socket.end()
              // The server must close its side of a half-closed connection.
              if (!(await until(() => got.closed))) problems.push(`${i} clean: the server never closed`)
              break
            }
            case "rst": {
              socket.write(rawGet("/events?topic=t"))
              await opened()
              socket.resetAndDestroy()
              break
            }
            case "before-response": {
              const request = rawGet("/events?topic=t")
              socket.write(rng.next() < 0.5 ? request : request.slice(0, 1 + rng.int(request.length - 1)))
              if (rng.next() < 0.5) socket.resetAndDestroy()
              else socket.end()
              break
            }
            case "registered": {
              // Abort once the subscriber is registered and its replay read has started: before any byte.
              const after = head - LOG + 1 + (cursor++ % (LOG - 1))
              let started = false
              reading.set(after, () => {
                started = true
                poke()
              })
              socket.write(rawGet("/events?topic=t", { "Last-Event-ID": `${epoch}-${after}` }))
              if (!(await until(() => started))) problems.push(`${i} registered: no replay read`)
              reading.delete(after)
              if (got.text.length > 0) problems.push(`${i} registered: bytes before the abort`)
              socket.resetAndDestroy()
              break
            }
            case "pipelined": {
              socket.write(rawGet("/events?topic=t").repeat(2 + rng.int(4)))
              await opened()
              socket.destroy()
              break
            }
            case "upgrade": {
              socket.write(rawGet("/events?topic=t", UPGRADE))
              await opened()
              if (rng.next() < 0.5) socket.resetAndDestroy()
              else socket.end()
              break
            }
            case "head": {
              socket.write(rawGet("/events?topic=t").replace(/^GET/, "HEAD"))
              if (!(await until(() => /\r\n\r\n/.test(got.text) || got.closed))) problems.push(`${i} head: no answer`)
              if (!/^HTTP\/1\.1 200 /.test(got.text)) problems.push(`${i} head: ${JSON.stringify(got.text.slice(0, 40))}`)
              socket.end()
              break
            }
          }
          socket.destroy()
          sockets.delete(socket)
          millis[kind] = (millis[kind] ?? 0) + performance.now() - began
        })

      const run = (from: number, n: number) =>
        Effect.forEach(Array.from({ length: n }, (_, i) => from + i), cycle, { concurrency: CONCURRENCY, discard: true })
      const serverConnections = () =>
        Effect.async<number>((resume) => {
          server.getConnections((_, n) => resume(Effect.succeed(n)))
        })
      const settled = (what: string) =>
        waitForEffect(
          `${what}: no subscriber, no stream, no server connection`,
          Effect.all([bus.stats, route.connections, serverConnections()]),
          ([s, c, n]) => s.subscribers === 0 && s.bufferedEvents === 0 && c === 0 && n === 0,
          10_000
        )

      // Warm-up: the same mix, so that lazily built state (pools, caches, JIT) exists before the baseline.
      yield* run(0, WARM_UP)
      yield* settled("after the warm-up")
      const timersBefore = activeTimeouts()
      const socketsBefore = activeSockets()
      const heapBefore = heldBytes()
      const endsBefore = (yield* bus.stats).ends.closed

      const started = Date.now()
      yield* run(WARM_UP, CYCLES)
      const elapsed = Date.now() - started

      const [stats] = yield* settled("after the churn")
      yield* waitFor("sockets back to the baseline", () => activeSockets() <= socketsBefore, 10_000)
      yield* waitFor("timers back to the baseline", () => activeTimeouts() <= timersBefore, 10_000)
      const heapAfter = heldBytes()
      const ratio = heapAfter / heapBefore
      console.log(
        `[churn] ${seed}: ${CYCLES} cycles (+${WARM_UP} warm-up), ${CONCURRENCY} at a time, in ${(elapsed / 1000).toFixed(1)} s ` +
          `(mean ms per kind ${JSON.stringify(Object.fromEntries(KINDS.map((k) => [k, Math.round(millis[k]! / counts[k]!)])))}) ` +
          `(${Math.round(CYCLES / (elapsed / 1000))}/s): ${JSON.stringify(counts)}; streams closed by their client ${
            stats.ends.closed - endsBefore
          }; ` +
          `timers ${timersBefore} -> ${activeTimeouts()}; sockets ${socketsBefore} -> ${activeSockets()}; ` +
          `heap ${mib(heapBefore)} -> ${mib(heapAfter)} (${((ratio - 1) * 100).toFixed(1)} %)`
      )
      assert.deepStrictEqual(problems.slice(0, 10), [], seed)
      assert.strictEqual(stats.subscribers, 0, seed)
      assert.strictEqual(stats.bufferedBytes, 0, seed)
      for (const kind of KINDS) assert.isAbove(counts[kind] ?? 0, WARM_UP / KINDS.length, `${kind} ran; ${seed}`)
      assert.isBelow(Math.abs(ratio - 1), 0.1, `heap within 10 % after GC; ${seed}`)
    }), 480_000)
})
