/**
 * S14 (issue 14 calls it "S10"; our S10 is the Redis append): in-process publish with N subscribers
 * on unique topics, N ∈ {100, 1,000, 20,000, 100,000}, plus N / 10 prefix-pattern subscribers.
 *
 * Subscriber i listens to `user/<i>/inbox`; prefix subscriber j to `user/<10 j>/*`, so an event reaches
 * one exact subscriber, and one prefix subscriber for a tenth of the topics: the same work at every N.
 * Events go to topics drawn by a seeded generator. After every 64 events the bench drains the
 * subscribers of those 64 topics (`take`, as a consumer does) and counts what it got; the count must
 * equal the deliveries the plan implies.
 *
 * Two shapes: single `bus.publish` calls (the issue's figures), and `publishAll` of 64.
 * Baseline, in the same process, interleaved: a `Map<topic, Set<listener>>` emitter whose listeners
 * push into their own arrays, drained the same way; it builds each event (id, time) as a publish
 * does, and each prefix listener is registered under the one topic it matches (it has no patterns).
 *
 * Each run publishes chunks of 64 until a time budget is spent and reports µs per event.
 */
import * as Effect from "effect/Effect"
import * as EventBus from "../../src/EventBus.js"
import type * as Event from "../../src/Event.js"
import * as EventLog from "../../src/EventLog.js"
import { inspectSubscriber } from "../../src/internal/eventBus.js"
import { type Ctx, interleave, makeRow, type Row } from "../lib/harness.js"
import { eventData, median, sig } from "../lib/stats.js"

const CHUNK = 64
const PLAN = 8192
const impls = ["sluice", "emitter"] as const
type Impl = (typeof impls)[number]

interface Case {
  readonly n: number
  /** 1: `publish` per event; 64: `publishAll` of the chunk. */
  readonly batch: number
  readonly budgetMs: number
}

interface Result {
  readonly usPerEvent: number
  readonly events: number
  readonly error?: string | undefined
}

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

/** Publishes chunks until the budget is spent (at least two chunks); `step` runs one chunk, returns deliveries. */
const timed = async (budgetMs: number, step: (chunk: number) => Promise<number> | number) => {
  let received = 0
  let chunk = 0
  const t0 = performance.now()
  let elapsed = 0
  while (chunk < 2 || elapsed < budgetMs) {
    const got = step(chunk++)
    received += typeof got === "number" ? got : await got
    elapsed = performance.now() - t0
  }
  return { events: chunk * CHUNK, received, ms: elapsed }
}

const runSluice = (c: Case): Promise<Result> => {
  const topics = plan(c.n)
  const inputs: Array<Event.EventInput> = Array.from({ length: c.n }, (_, i) => ({ topic: topicOf(i), type: "x", data: DATA }))
  return Effect.runPromise(Effect.gen(function*() {
    const log = yield* EventLog.makeMemory({ maxEvents: 10_000 })
    const bus = yield* EventBus.make({ maxEvents: 1e6, maxBytes: 2 ** 40 }).pipe(Effect.provideService(EventLog.EventLog, log))
    const exact: Array<ReturnType<typeof inspectSubscriber>> = []
    for (let i = 0; i < c.n; i++) exact.push(inspectSubscriber(yield* bus.subscribe({ topics: [topicOf(i)] })))
    const prefix: Array<ReturnType<typeof inspectSubscriber>> = []
    for (let j = 0; j < c.n / 10; j++) prefix.push(inspectSubscriber(yield* bus.subscribe({ topics: [prefixOf(j)] })))
    const chunkInputs = (chunk: number) => {
      const out: Array<Event.EventInput> = []
      for (let k = 0; k < CHUNK; k++) out.push(inputs[topics[(chunk * CHUNK + k) % PLAN]!]!)
      return out
    }
    const chunks = Array.from({ length: PLAN / CHUNK }, (_, k) => chunkInputs(k))
    const drain = (chunk: number) => {
      let got = 0
      for (let k = 0; k < CHUNK; k++) {
        const i = topics[(chunk * CHUNK + k) % PLAN]!
        got += exact[i]!.take().length
        if (i % 10 === 0) got += prefix[i / 10]!.take().length
      }
      return got
    }
    const publishChunk = (chunk: number): Effect.Effect<number> => {
      const batch = chunks[chunk % chunks.length]!
      const publish = c.batch === 1
        ? Effect.forEach(batch, (input) => bus.publish(input), { discard: true })
        : bus.publishAll(batch)
      return Effect.orDie(Effect.map(publish, () => drain(chunk)))
    }
    const r = yield* Effect.promise(() => timed(c.budgetMs, (chunk) => Effect.runSync(publishChunk(chunk))))
    const expected = expectedDeliveries(topics, r.events)
    return {
      usPerEvent: (r.ms * 1000) / r.events,
      events: r.events,
      error: r.received === expected ? undefined : `sluice N=${c.n}: ${r.received} deliveries, expected ${expected}`
    }
  }).pipe(Effect.scoped))
}

const runEmitter = async (c: Case): Promise<Result> => {
  const topics = plan(c.n)
  const listeners = new Map<string, Set<(event: Event.Event) => void>>()
  const on = (topic: string, listener: (event: Event.Event) => void) => {
    let set = listeners.get(topic)
    if (set === undefined) listeners.set(topic, set = new Set())
    set.add(listener)
  }
  const queue = (): { events: Array<Event.Event>; listener: (event: Event.Event) => void } => {
    const q = { events: [] as Array<Event.Event>, listener: (event: Event.Event) => void q.events.push(event) }
    return q
  }
  const exact = Array.from({ length: c.n }, (_, i) => {
    const q = queue()
    on(topicOf(i), q.listener)
    return q
  })
  const prefix = Array.from({ length: c.n / 10 }, (_, j) => {
    const q = queue()
    on(topicOf(10 * j), q.listener)
    return q
  })
  const names = Array.from({ length: c.n }, (_, i) => topicOf(i))
  let seq = 0
  const emit = (topic: string) => {
    const event: Event.Event = { id: { epoch: "bench", seq: ++seq }, topic, type: "x", data: DATA, time: Date.now() }
    const set = listeners.get(topic)
    if (set !== undefined) for (const listener of set) listener(event)
  }
  const take = (q: { events: Array<Event.Event> }) => {
    const n = q.events.length
    if (n > 0) q.events = []
    return n
  }
  const r = await timed(c.budgetMs, (chunk) => {
    for (let k = 0; k < CHUNK; k++) emit(names[topics[(chunk * CHUNK + k) % PLAN]!]!)
    let got = 0
    for (let k = 0; k < CHUNK; k++) {
      const i = topics[(chunk * CHUNK + k) % PLAN]!
      got += take(exact[i]!)
      if (i % 10 === 0) got += take(prefix[i / 10]!)
    }
    return got
  })
  const expected = expectedDeliveries(topics, r.events)
  return {
    usPerEvent: (r.ms * 1000) / r.events,
    events: r.events,
    error: r.received === expected ? undefined : `emitter N=${c.n}: ${r.received} deliveries, expected ${expected}`
  }
}

export const run = (impl: Impl, c: Case) => (impl === "sluice" ? runSluice(c) : runEmitter(c))

export const s14 = async (ctx: Ctx): Promise<Array<Row>> => {
  const ns = ctx.smoke ? [100, 2_000] : [100, 1_000, 20_000, 100_000]
  const budgetMs = ctx.smoke ? 50 : 1_000
  const rows: Array<Row> = []
  for (const batch of [1, 64]) {
    const perN = new Map<number, Record<Impl, Array<Result>>>()
    for (const n of ns) {
      const c: Case = { n, batch, budgetMs }
      for (const impl of impls) await run(impl, { ...c, budgetMs: budgetMs / 5 }) // warm-up
      const reps = await interleave(ctx, `S14 N=${n} batch=${batch}`, impls, (impl) => run(impl, c), (r) =>
        r.error ?? `${sig(r.usPerEvent)} µs per event (${r.events} events)`)
      for (const impl of impls) for (const r of reps[impl]) if (r.error !== undefined) ctx.fail(r.error)
      perN.set(n, reps)
      rows.push(makeRow(ctx, {
        scenario: "S14",
        params: { n, prefixSubscribers: n / 10, batch: batch === 1 ? "publish" : "publishAll(64)" },
        metric: "published events/s",
        better: "higher",
        baselineName: "Map<topic, Set<listener>> emitter",
        sluice: reps.sluice.map((r) => 1e6 / r.usPerEvent),
        baseline: reps.emitter.map((r) => 1e6 / r.usPerEvent),
        goal: ">= 0.5x",
        check: (r) => r.ratio >= 0.5,
        extra: { sluiceUsPerEvent: sig(median(reps.sluice.map((r) => r.usPerEvent))), baselineUsPerEvent: sig(median(reps.emitter.map((r) => r.usPerEvent))) }
      }))
    }
    const low = perN.get(ns[0]!)!
    const high = perN.get(ns[ns.length - 1]!)!
    const growth = (impl: Impl) => high[impl].map((r, i) => r.usPerEvent / low[impl][i]!.usPerEvent)
    rows.push(makeRow(ctx, {
      scenario: "S14",
      params: { n: `${ns[ns.length - 1]} vs ${ns[0]}`, batch: batch === 1 ? "publish" : "publishAll(64)" },
      metric: "cost per event, largest N / smallest N",
      better: "lower",
      baselineName: "the emitter's own growth",
      sluice: growth("sluice"),
      baseline: growth("emitter"),
      goal: "sluice <= 1.5",
      check: (r) => r.sluice <= 1.5
    }))
  }
  return rows
}
