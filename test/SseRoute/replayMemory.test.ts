/**
 * Replay stays inside the caps: resumes are read from the log page by page at the socket's pace and
 * write the events' shared frames, so clients that resume far back and never read cost one page
 * each at most, not a copy of their whole replay; pages of a log that hands out copies (a remote
 * one) count in `replayBytes` against the bus's budget.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Event from "../../src/Event.js"
import { heldBytes, MiB, mib } from "../utils/memory.js"
import { copyingReads, startServer } from "../utils/server.js"
import { connect, rawGet, request, waitForEffect } from "../utils/sse.js"

const CLIENTS = 50
const EVENTS = 1_000

describe("SseRoute replay memory", () => {
  it.scopedLive("50 resumes of 1,000 events of 30 KB that never read hold at most a page each", () =>
    Effect.gen(function*() {
      const { bus, port } = yield* startServer({ route: { heartbeat: "1 hour" } })
      const data = "x".repeat(30_000)
      const [first] = yield* bus.publishAll(Array.from({ length: EVENTS }, () => ({ topic: "t", data })))
      const cursor = Event.formatId({ epoch: first!.id.epoch, seq: 0 })
      const before = heldBytes()
      const rssBefore = process.memoryUsage().rss
      const sockets = yield* Effect.forEach(
        Array.from({ length: CLIENTS }),
        () => Effect.promise(() => connect(port)),
        { concurrency: 10 }
      )
      for (const socket of sockets) {
        socket.on("error", () => {})
        socket.pause() // never reads: only the kernel's buffers take bytes
        socket.write(rawGet("/events?topic=t", { "Last-Event-ID": cursor }))
      }
      yield* waitForEffect("every resume registered", bus.stats, (s) => s.resumes.resumed === CLIENTS, 20_000)
      // let every writer fill its socket
      let stats = yield* bus.stats
      for (let i = 0; i < 20; i++) {
        yield* Effect.promise(() => new Promise((r) => setTimeout(r, 50)))
        stats = yield* bus.stats
      }
      const held = heldBytes() - before
      const rss = process.memoryUsage().rss - rssBefore
      console.log(
        `[replay memory] ${CLIENTS} stopped resumes of ${EVENTS} × 30 KB: heap+buffers +${mib(held)}, RSS +${mib(rss)}, ` +
          `replayBytes ${mib(stats.replayBytes)}, delivered ${stats.delivered}`
      )
      assert.strictEqual(stats.replayBytes, 0, "the memory log's pages are its own events: nothing counted")
      // the frames are encoded once and shared (about 30 MB); a copy per connection would be 1.5 GB
      assert.isAtMost(held, 150 * MiB)
      for (const socket of sockets) socket.destroy()
    }), 60_000)

  it.scopedLive("a resume that does not fit the bus's replay budget gets 200 and a clean end (unavailable)", () =>
    Effect.gen(function*() {
      const { bus, port, url } = yield* startServer({
        wrapLog: copyingReads, // a remote log's pages: the memory log's own events cost nothing more
        bus: { maxReplayBytes: 2 * MiB, maxBytes: MiB },
        route: { heartbeat: "1 hour", stallTimeout: "1 hour" }
      })
      const data = "y".repeat(30_000)
      const [first] = yield* bus.publishAll(Array.from({ length: 500 }, () => ({ topic: "t", data })))
      const cursor = Event.formatId({ epoch: first!.id.epoch, seq: 0 })
      const holders = yield* Effect.forEach([1, 2], () => Effect.promise(() => connect(port)))
      for (const socket of holders) {
        socket.on("error", () => {})
        socket.pause()
        socket.write(rawGet("/events?topic=t", { "Last-Event-ID": cursor }))
      }
      yield* waitForEffect("two replays holding their pages", bus.stats, (s) => s.replayBytes > MiB, 10_000)
      const late = yield* Effect.promise(() => request(`${url}/events?topic=t`, { headers: { "last-event-id": cursor } }))
      assert.strictEqual(late.status, 200)
      assert.match(late.body, /^retry: \d+\n/)
      assert.isTrue(late.body.endsWith("event: end\ndata: {\"reason\":\"unavailable\"}\n\n"))
      assert.notInclude(late.body, "id:", "nothing of the replay was sent")
      for (const socket of holders) socket.destroy()
      yield* waitForEffect("the budget back to 0", bus.stats, (s) => s.replayBytes === 0 && s.subscribers === 0, 10_000)
    }), 60_000)
})
