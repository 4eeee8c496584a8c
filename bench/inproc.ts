/**
 * S1, run in a process of its own per implementation: in-process fan-out to N subscribers.
 *
 * - sluice: `EventBus.layerMemory`, N subscriptions drained through the Effect API
 *   (`Stream.runForEachChunk` on `subscription.events`, counting), a publisher fiber calling
 *   `publishAll` with `batch` events and `Effect.yieldNow()` after every `yieldEvery` events.
 * - sluice-takeAll: the same, each subscription drained by a plain Effect loop over
 *   `subscription.takeAll` (no `Stream` layer).
 * - baseline (performance.md 2a): an `EventEmitter` whose N listeners push into their own array,
 *   drained in a `queueMicrotask`; the publisher emits the same batches and yields (`await`) at the
 *   same points.
 *
 * Timing runs from the first publish until every subscriber has counted every event.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Stream from "effect/Stream"
import { EventEmitter } from "node:events"
import * as EventBus from "../src/EventBus.js"
import type * as Event from "../src/Event.js"
import { childConfig, serveIpc } from "./lib/ipc.js"
import { startProfile, stopProfile } from "./lib/profile.js"
import { eventData } from "./lib/stats.js"

export interface InprocCase {
  readonly impl: "sluice" | "sluice-takeAll" | "emitter"
  readonly n: number
  readonly events: number
  readonly batch: number
  readonly yieldEvery: number
}

childConfig<Record<string, never>>()
const POOL = 1024
const inputs: Array<Event.EventInput> = Array.from({ length: POOL }, (_, i) => ({
  topic: "bench",
  type: "x",
  data: eventData(1_763_780_000_000 + i)
}))
const prebuilt: Array<Event.Event> = inputs.map((input, i) => ({
  id: { epoch: "bench0emit1", seq: i + 1 },
  topic: input.topic,
  type: input.type!,
  data: input.data,
  time: 0
}))
const batchesOf = <A>(pool: ReadonlyArray<A>, size: number): Array<Array<A>> =>
  Array.from({ length: Math.ceil(pool.length / size) }, (_, i) => pool.slice(i * size, (i + 1) * size))


// One bus for the life of the process, as in an application: every run subscribes afresh in its own
// scope. (A bus per run would measure V8 re-optimising the bus's closures each time, not fan-out.)
const runtime = ManagedRuntime.make(EventBus.layerMemory({ maxEvents: 1e9, maxBytes: 2 ** 52, log: { maxEvents: 10_000 } }))

const runSluice = (c: InprocCase): Promise<number> => {
  const batches = batchesOf(inputs, c.batch)
  const target = c.events * c.n
  return runtime.runPromise(
    Effect.gen(function*() {
      const bus = yield* EventBus.EventBus
      const done = yield* Deferred.make<void>()
      let received = 0
      for (let i = 0; i < c.n; i++) {
        const sub = yield* bus.subscribe({ maxEvents: 1e9, maxBytes: 2 ** 52 })
        if (c.impl === "sluice-takeAll") {
          const loop: Effect.Effect<void> = Effect.flatMap(sub.takeAll, ([chunk, ended]) => {
            received += chunk.length
            if (received >= target) Deferred.unsafeDone(done, Effect.void)
            return ended ? Effect.void : loop
          })
          yield* Effect.forkScoped(loop)
        } else {
          yield* Effect.forkScoped(Stream.runForEachChunk(sub.events, (chunk) =>
            Effect.sync(() => {
              received += chunk.length
              if (received >= target) Deferred.unsafeDone(done, Effect.void)
            })))
        }
      }
      // Let every consumer fiber start and park on its empty buffer.
      for (let i = 0; i < 4; i++) yield* Effect.yieldNow()
      const t0 = performance.now()
      let sent = 0
      let sinceYield = 0
      let b = 0
      while (sent < c.events) {
        const batch = batches[b++ % batches.length]!
        const slice = sent + batch.length > c.events ? batch.slice(0, c.events - sent) : batch
        yield* bus.publishAll(slice)
        sent += slice.length
        sinceYield += slice.length
        if (sinceYield >= c.yieldEvery) {
          sinceYield = 0
          yield* Effect.yieldNow()
        }
      }
      yield* Deferred.await(done)
      const ms = performance.now() - t0
      if (received !== target) throw new Error(`sluice N=${c.n}: received ${received}, expected ${target}`)
      return ms
    }).pipe(Effect.scoped)
  )
}

const runEmitter = async (c: InprocCase): Promise<number> => {
  const batches = batchesOf(prebuilt, c.batch)
  const target = c.events * c.n
  const emitter = new EventEmitter()
  emitter.setMaxListeners(0)
  let received = 0
  let resolveDone!: () => void
  const done = new Promise<void>((resolve) => (resolveDone = resolve))
  for (let i = 0; i < c.n; i++) {
    let queue: Array<Event.Event> = []
    let scheduled = false
    const drain = () => {
      scheduled = false
      const batch = queue
      queue = []
      received += batch.length
      if (received >= target) resolveDone()
    }
    emitter.on("event", (event: Event.Event) => {
      queue.push(event)
      if (!scheduled) {
        scheduled = true
        queueMicrotask(drain)
      }
    })
  }
  const t0 = performance.now()
  let sent = 0
  let sinceYield = 0
  let b = 0
  while (sent < c.events) {
    const batch = batches[b++ % batches.length]!
    const count = Math.min(batch.length, c.events - sent)
    for (let i = 0; i < count; i++) emitter.emit("event", batch[i])
    sent += count
    sinceYield += count
    if (sinceYield >= c.yieldEvery) {
      sinceYield = 0
      await null
    }
  }
  await done
  const ms = performance.now() - t0
  if (received !== target) throw new Error(`emitter N=${c.n}: received ${received}, expected ${target}`)
  return ms
}

serveIpc({
  /**
   * Runs one case; returns deliveries/s. No forced GC first: each implementation has its own process,
   * so no other implementation's garbage is pending, and a forced full GC shrinks the young
   * generation, which made the next short run of an allocating consumer 2-2.5x slower than the same
   * run in a steady-state heap (measured: 16-19 vs 38-43 M deliveries/s at N = 100).
   */
  run: async (c: InprocCase & { readonly profile?: string }) => {
    if (c.profile !== undefined) await startProfile()
    const ms = c.impl === "emitter" ? await runEmitter(c) : await runSluice(c)
    const file = c.profile === undefined ? undefined : await stopProfile(c.profile)
    return { rate: (c.events * c.n) / (ms / 1000), ms, file }
  }
})
