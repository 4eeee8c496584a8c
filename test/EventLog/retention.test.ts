/**
 * The memory log's byte bound holds against real memory: what a retained event costs includes its
 * SSE frame, which writers encode once and keep with the event (each line break in the data becomes
 * a 7-byte `data: ` line, so a frame can be many times its data).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as EventLog from "../../src/EventLog.js"
import { frameOf } from "../../src/internal/sse.js"
import { heldBytes, MiB, mib } from "../utils/memory.js"

describe("EventLog memory retention", () => {
  it.live("2,000 events of 32,000 line breaks, every frame encoded, hold no more than maxBytes", () =>
    Effect.gen(function*() {
      const maxBytes = 64 * MiB
      const log = yield* EventLog.makeMemory({ maxBytes })
      const before = heldBytes()
      const data = "\n".repeat(32_000)
      for (let i = 0; i < 2_000; i++) {
        const [event] = yield* log.append([{ topic: "t", data: i % 2 === 0 ? data : data.slice(1) }])
        frameOf(event!) // what a connected SSE writer does with each event: encode once, cache
      }
      const earliest = yield* log.earliest
      // every retained event, as a replay reads it: their frames are the cached ones
      let after = earliest - 1
      while (after < 2_000) {
        const page = yield* log.read(after, { limit: 100 })
        for (const event of page.events) frameOf(event)
        after = page.cursor
      }
      const held = heldBytes() - before
      const retained = 2_000 - earliest + 1
      console.log(`[retention] ${retained} events retained of 2,000; ${mib(held)} held for maxBytes ${mib(maxBytes)}`)
      assert.isBelow(retained, 300, "each event counts its 224 KB frame")
      assert.isAtMost(held, maxBytes * 1.1)
      assert.isAtLeast(held, maxBytes * 0.5, "the measurement sees the retained frames")
    }), 60_000)
})
