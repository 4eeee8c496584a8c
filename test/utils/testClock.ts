import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"

/**
 * Polls (real time, every 2 ms) until the TestClock has a sleep ending at `deadline`: a fiber is
 * waiting, so moving the clock now decides its next step by an event, not by wall-clock luck.
 */
export const sleepingUntil = (deadline: number, polls = 5_000) =>
  Effect.gen(function*() {
    for (let i = 0; i < polls; i++) {
      if (Chunk.some(yield* TestClock.sleeps(), (t) => t === deadline)) return
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 2)))
    }
    return yield* Effect.dieMessage(`no sleep until ${deadline} registered`)
  })
