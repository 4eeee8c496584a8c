/**
 * S14, run in a process of its own per implementation (as S1 does): publish with N subscribers on
 * unique topics plus N / 10 prefix-pattern subscribers. `setup` subscribes N + N / 10 once (the
 * previous set is released and collected first); `run` publishes chunks of 64 until a time budget
 * is spent and returns µs per event. A process per implementation keeps one side's garbage (100,000
 * subscriptions) out of the other's timing.
 *
 * - sluice: `EventBus.make` on the memory log; subscriber i has `topics: ["user/<i>/inbox"]`,
 *   prefix subscriber j `topics: ["user/<10 j>/*"]`.
 * - emitter: a `Map<topic, Set<listener>>`, each listener pushing into its own array; it builds each
 *   event (id, time) as a publish does; a prefix listener sits under the one topic it matches.
 *
 * After every 64 events both drain the subscribers of those topics (`take`) and count; the count must
 * equal the deliveries the plan implies.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as EventBus from "../src/EventBus.js"
import type * as Event from "../src/Event.js"
import * as EventLog from "../src/EventLog.js"
import { inspectSubscriber } from "../src/internal/eventBus.js"
import { childConfig, serveIpc } from "./lib/ipc.js"
import { eventData } from "./lib/stats.js"

const CHUNK = 64
const PLAN = 8192

export interface FanoutRun {
  /** 1: `publish` per event; 64: `publishAll` of the chunk. */
  readonly batch: number
  readonly budgetMs: number
}

export interface FanoutResult {
  readonly usPerEvent: number
  readonly events: number
  readonly error?: string | undefined
}

interface Rig {
  /** Publishes chunk `chunk` of the plan, drains its subscribers, returns how many events they got. */
  readonly step: (chunk: number, batch: number) => number
  readonly close: () => Promise<void>
}

const { impl } = childConfig<{ impl: "sluice" | "emitter" }>()

/** mulberry32: the same plan at every run. */
const plan = (n: number): Int32Array => {
  let state = 0x5eed14 + n
  const out = new Int32Array(PLAN)
  for (let k = 0; k < PLAN; k++) {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    out[k] = Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n)
  }
  return out
}

const topicOf = (i: number) => `user/${i}/inbox`
const prefixOf = (j: number) => `user/${10 * j}/*`
const DATA = eventData(1_765_000_000_000)

/** Deliveries the plan implies for `events` events: one, plus one where a prefix subscriber listens. */
const expectedDeliveries = (topics: Int32Array, events: number): number => {
  let total = 0
  for (let k = 0; k < events; k++) total += topics[k % PLAN]! % 10 === 0 ? 2 : 1
  return total
}

/** Drains the subscribers of one chunk's topics with `take` (an exact one, and a prefix one for a tenth). */
const drainChunk = (topics: Int32Array, chunk: number, take: (i: number, prefix: boolean) => number): number => {
  let got = 0
  for (let k = 0; k < CHUNK; k++) {
    const i = topics[(chunk * CHUNK + k) % PLAN]!
    got += take(i, false)
    if (i % 10 === 0) got += take(i / 10, true)
  }
  return got
}

const setupSluice = async (n: number, topics: Int32Array): Promise<Rig> => {
  const scope = Effect.runSync(Scope.make())
  const inputs: Array<Event.EventInput> = Array.from({ length: n }, (_, i) => ({ topic: topicOf(i), type: "x", data: DATA }))
  const chunks = Array.from({ length: PLAN / CHUNK }, (_, c) =>
    Array.from({ length: CHUNK }, (_, k) => inputs[topics[c * CHUNK + k]!]!))
  const { bus, exact, prefix } = await Effect.runPromise(Scope.extend(
    Effect.gen(function*() {
      const log = yield* EventLog.makeMemory({ maxEvents: 10_000 })
      const bus = yield* EventBus.make({ maxEvents: 1e6, maxBytes: 2 ** 40 }).pipe(Effect.provideService(EventLog.EventLog, log))
      const exact: Array<ReturnType<typeof inspectSubscriber>> = []
      for (let i = 0; i < n; i++) exact.push(inspectSubscriber(yield* bus.subscribe({ topics: [topicOf(i)] })))
      const prefix: Array<ReturnType<typeof inspectSubscriber>> = []
      for (let j = 0; j < n / 10; j++) prefix.push(inspectSubscriber(yield* bus.subscribe({ topics: [prefixOf(j)] })))
      return { bus, exact, prefix }
    }),
    scope
  ))
  const take = (i: number, isPrefix: boolean) => (isPrefix ? prefix : exact)[i]!.take().length
  const publish = (chunk: number, batch: number) => {
    const inputs = chunks[chunk % chunks.length]!
    return batch === 1 ? Effect.forEach(inputs, (input) => bus.publish(input), { discard: true }) : bus.publishAll(inputs)
  }
  return {
    step: (chunk, batch) => {
      Effect.runSync(Effect.orDie(publish(chunk, batch)))
      return drainChunk(topics, chunk, take)
    },
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const setupEmitter = (n: number, topics: Int32Array): Rig => {
  const listeners = new Map<string, Set<(event: Event.Event) => void>>()
  const queues = (count: number, topicOfQueue: (q: number) => string) =>
    Array.from({ length: count }, (_, q) => {
      const queue = { events: [] as Array<Event.Event> }
      const topic = topicOfQueue(q)
      let set = listeners.get(topic)
      if (set === undefined) listeners.set(topic, set = new Set())
      set.add((event) => void queue.events.push(event))
      return queue
    })
  const exact = queues(n, topicOf)
  const prefix = queues(n / 10, (j) => topicOf(10 * j))
  const names = Array.from({ length: n }, (_, i) => topicOf(i))
  let seq = 0
  const take = (i: number, isPrefix: boolean) => {
    const queue = (isPrefix ? prefix : exact)[i]!
    const got = queue.events.length
    if (got > 0) queue.events = []
    return got
  }
  return {
    step: (chunk) => {
      for (let k = 0; k < CHUNK; k++) {
        const topic = names[topics[(chunk * CHUNK + k) % PLAN]!]!
        const event: Event.Event = { id: { epoch: "bench", seq: ++seq }, topic, type: "x", data: DATA, time: Date.now() }
        const set = listeners.get(topic)
        if (set !== undefined) for (const listener of set) listener(event)
      }
      return drainChunk(topics, chunk, take)
    },
    close: async () => {}
  }
}

let rig: Rig | undefined
let topics: Int32Array = new Int32Array(0)
let n = 0
let nextChunk = 0

serveIpc({
  setup: async (args: { readonly n: number }) => {
    await rig?.close()
    rig = undefined
    ;(globalThis as { gc?: () => void }).gc?.()
    n = args.n
    topics = plan(n)
    nextChunk = 0
    rig = impl === "sluice" ? await setupSluice(n, topics) : setupEmitter(n, topics)
    ;(globalThis as { gc?: () => void }).gc?.()
    return null
  },
  /** Publishes chunks until the budget is spent (at least two), continuing the plan where the last run stopped. */
  run: (args: FanoutRun): FanoutResult => {
    const first = nextChunk
    let received = 0
    const t0 = performance.now()
    let elapsed = 0
    while (nextChunk - first < 2 || elapsed < args.budgetMs) {
      received += rig!.step(nextChunk++, args.batch)
      elapsed = performance.now() - t0
    }
    const events = (nextChunk - first) * CHUNK
    const expected = expectedDeliveries(topics, first * CHUNK + events) - expectedDeliveries(topics, first * CHUNK)
    return {
      usPerEvent: (elapsed * 1000) / events,
      events,
      error: received === expected ? undefined : `${impl} N=${n}: ${received} deliveries, expected ${expected}`
    }
  }
})
