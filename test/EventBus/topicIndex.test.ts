import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import type * as Event from "../../src/Event.js"
import * as EventBus from "../../src/EventBus.js"
import * as EventLog from "../../src/EventLog.js"
import { inspectSubscriber } from "../../src/internal/eventBus.js"
import { TopicIndex } from "../../src/internal/topicIndex.js"
import { seeded, testSeed } from "../utils/random.js"

const makeBus = (options?: EventBus.Options) =>
  Effect.gen(function*() {
    const log = yield* EventLog.makeMemory({ maxEvents: 100_000 })
    return yield* EventBus.make(options).pipe(Effect.provideService(EventLog.EventLog, log))
  })

/** What a subscription has buffered, as `topic:data`, emptying it. */
const drain = (subscription: EventBus.Subscription): Array<string> =>
  inspectSubscriber(subscription).take().map((e) => `${e.topic}:${e.data}`)

/** An indexed value, one object per name. */
interface Named {
  readonly name: string
}
const values = new Map<string, Named>()
const v = (name: string): Named => {
  let value = values.get(name)
  if (value === undefined) values.set(name, value = { name })
  return value
}

const visited = (index: TopicIndex<Named>, topic: string): Array<string> => {
  const out: Array<string> = []
  index.forEach(topic, (value) => out.push(value.name))
  return out.sort()
}

/** The reference: a pattern set matches a topic when one of its patterns is the topic or a `*` prefix of it. */
const naiveMatch = (patterns: ReadonlyArray<string>, topic: string): boolean =>
  patterns.length === 0 ||
  patterns.some((p) => p.endsWith("*") ? topic.startsWith(p.slice(0, -1)) : p === topic)

describe("TopicIndex", () => {
  it("finds exact topics and every matching prefix, once per pattern, and forgets what is deleted", () => {
    const index = new TopicIndex<Named>()
    assert.isTrue(index.empty)
    index.add("a/b", v("exact"))
    index.add("a/*", v("a"))
    index.add("a/b*", v("ab"))
    index.add("a/b*", v("ab2"))
    index.add("a/b*", v("ab2")) // again: still once
    index.add("b*", v("b"))
    index.add("a/*", v("both"))
    index.add("a/b", v("both"))
    assert.deepStrictEqual(visited(index, "a/b"), ["a", "ab", "ab2", "both", "both", "exact"])
    assert.deepStrictEqual(visited(index, "a/bc"), ["a", "ab", "ab2", "both"])
    assert.deepStrictEqual(visited(index, "a/"), ["a", "both"], "a prefix matches the topic equal to it")
    assert.deepStrictEqual(visited(index, "a"), [], "a topic shorter than every prefix")
    assert.deepStrictEqual(visited(index, "bb/x"), ["b"])
    assert.deepStrictEqual(visited(index, "c"), [])
    index.delete("a/b*", v("ab"))
    assert.deepStrictEqual(visited(index, "a/bc"), ["a", "ab2", "both"], "one value left under a key")
    index.delete("a/b*", v("never there"))
    index.delete("a/b*", v("ab2"))
    index.delete("a/b*", v("ab2"))
    index.delete("zzz", v("never there"))
    assert.deepStrictEqual(visited(index, "a/bc"), ["a", "both"])
    for (const [pattern, name] of [["a/b", "exact"], ["a/*", "a"], ["b*", "b"], ["a/*", "both"], ["a/b", "both"]] as const) {
      index.delete(pattern, v(name))
    }
    assert.isTrue(index.empty)
    assert.deepStrictEqual(visited(index, "a/b"), [])
  })
})

describe("EventBus fan-out through the topic index", () => {
  it.scoped("exact topics and prefix patterns each get their share; a subscriber to every topic gets all", () =>
    Effect.gen(function*() {
      const bus = yield* makeBus()
      const all = yield* bus.subscribe()
      const exact = yield* bus.subscribe({ topics: ["user/1"] })
      const prefix = yield* bus.subscribe({ topics: ["user/1*"] })
      const other = yield* bus.subscribe({ topics: ["team/*"] })
      const none = yield* bus.subscribe({ topics: ["nobody"] })
      yield* bus.publishAll([
        { topic: "user/1", data: "1" },
        { topic: "user/10", data: "2" },
        { topic: "team/x", data: "3" },
        { topic: "user/2", data: "4" },
        { topic: "user/1", data: "5" }
      ])
      assert.deepStrictEqual(drain(all), ["user/1:1", "user/10:2", "team/x:3", "user/2:4", "user/1:5"])
      assert.deepStrictEqual(drain(exact), ["user/1:1", "user/1:5"])
      assert.deepStrictEqual(drain(prefix), ["user/1:1", "user/10:2", "user/1:5"])
      assert.deepStrictEqual(drain(other), ["team/x:3"])
      assert.deepStrictEqual(drain(none), [])
    }))

  it.scoped("a subscriber matching one event through several patterns gets it once, in log order", () =>
    Effect.gen(function*() {
      const bus = yield* makeBus()
      const many = yield* bus.subscribe({ topics: ["a/*", "a/b*", "a/b/c", "a/b/c", "x"] })
      const twin = yield* bus.subscribe({ topics: ["a/b/c", "x", "a/b*", "a/*"] }) // the same set: one shared matcher
      const filtered = yield* bus.subscribe({ topics: ["a/*", "a/b/c"], filter: (e) => e.data !== "2" })
      const topics = ["a/b/c", "x", "a/q", "y", "a/b/c", "a/bz", "x"]
      yield* bus.publishAll(topics.map((topic, i) => ({ topic, data: String(i) })))
      const expected = ["a/b/c:0", "x:1", "a/q:2", "a/b/c:4", "a/bz:5", "x:6"]
      const first = inspectSubscriber(many).buffer
      assert.deepStrictEqual(drain(many), expected)
      assert.strictEqual(inspectSubscriber(twin).buffer, first, "one set's share is one array, shared")
      assert.deepStrictEqual(drain(twin), expected)
      assert.deepStrictEqual(drain(filtered), ["a/b/c:0", "a/b/c:4", "a/bz:5"])
      // One at a time as well, with a buffer already holding events (the slow path).
      for (const [i, topic] of topics.entries()) yield* bus.publish({ topic, data: String(i) })
      assert.deepStrictEqual(drain(many), expected)
    }))

  it.scoped("caps, overflow and the floor hold for indexed subscribers", () =>
    Effect.gen(function*() {
      const bus = yield* makeBus()
      const small = yield* bus.subscribe({ topics: ["t/*"], maxEvents: 3 })
      const big = yield* bus.subscribe({ topics: ["t/*"] })
      yield* bus.publishAll([1, 2].map((i) => ({ topic: "t/a", data: String(i) })))
      yield* bus.publishAll([3, 4].map((i) => ({ topic: "t/a", data: String(i) })))
      assert.strictEqual(yield* small.ended, "overflow")
      assert.deepStrictEqual(drain(small), ["t/a:1", "t/a:2", "t/a:3"], "what fit stays to be drained")
      assert.deepStrictEqual(drain(big), ["t/a:1", "t/a:2", "t/a:3", "t/a:4"])
      const head = (yield* bus.stats).log.head
      const resumed = yield* bus.subscribe({ topics: ["t/*"], after: { epoch: (yield* bus.stats).log.epoch, seq: head } })
      yield* bus.publish({ topic: "t/a", data: "5" })
      assert.deepStrictEqual(drain(resumed), ["t/a:5"])
      assert.deepStrictEqual(drain(big), ["t/a:5"])
      const stats = yield* bus.stats
      assert.strictEqual(stats.bufferedEvents, 0)
      assert.strictEqual(stats.bufferedBytes, 0)
    }))

  it.scoped("subscribers that leave or join during a fan-out: the others still get every event once, in order", () =>
    Effect.gen(function*() {
      const bus = yield* makeBus()
      const scopes = yield* Effect.forEach(Array.from({ length: 8 }), () => Scope.make())
      const leavers = yield* Effect.forEach(scopes, (scope, i) =>
        Scope.extend(bus.subscribe(i % 2 === 0 ? {} : { topics: ["t", "t*"] }), scope))
      const joined: Array<EventBus.Subscription> = []
      const joinScope = yield* Scope.make()
      let calls = 0
      // The first filter call closes every leaver and subscribes two more, from inside the fan-out.
      const trigger = (_: Event.Event) => {
        if (calls++ === 0) {
          for (const scope of scopes) Effect.runSync(Scope.close(scope, Exit.void))
          for (const options of [{}, { topics: ["t*"] }]) {
            joined.push(Effect.runSync(Scope.extend(bus.subscribe(options), joinScope)))
          }
        }
        return true
      }
      const stayers = [
        yield* bus.subscribe({ filter: trigger }),
        ...(yield* Effect.forEach(Array.from({ length: 5 }), (_, i) => bus.subscribe(i % 2 === 0 ? {} : { topics: ["t*", "t"] })))
      ]
      const first = Array.from({ length: 6 }, (_, i) => ({ topic: i % 2 === 0 ? "t" : "t2", data: String(i) }))
      yield* bus.publishAll(first)
      const expected = first.map((e) => `${e.topic}:${e.data}`)
      for (const [i, s] of stayers.entries()) assert.deepStrictEqual(drain(s), expected, `stayer ${i}`)
      for (const s of leavers) assert.strictEqual(yield* s.ended, "closed")
      for (const s of joined) assert.deepStrictEqual(drain(s), [], "a subscriber that joined mid-batch starts after it")
      yield* bus.publish({ topic: "t", data: "next" })
      for (const s of [...stayers, ...joined]) assert.deepStrictEqual(drain(s), ["t:next"])
      assert.strictEqual((yield* bus.stats).subscribers, stayers.length + joined.length)
      yield* Scope.close(joinScope, Exit.void)
    }))

  it.scoped("a filter that throws ends only its subscriber; the others of its topic set still get the batch", () =>
    Effect.gen(function*() {
      const bus = yield* makeBus()
      const before = yield* bus.subscribe({ topics: ["t"] })
      const thrower = yield* bus.subscribe({
        topics: ["t"],
        filter: (e) => {
          if (e.data === "1") throw new Error("boom")
          return true
        }
      })
      const after = yield* bus.subscribe({ topics: ["t"] })
      yield* bus.publishAll([0, 1, 2].map((i) => ({ topic: "t", data: String(i) })))
      assert.strictEqual(yield* thrower.ended, "closed")
      for (const s of [before, after]) assert.deepStrictEqual(drain(s), ["t:0", "t:1", "t:2"])
    }))

  it.scoped("seeded: indexed fan-out equals a naive matcher over random topics, patterns, filters, joins and leaves", () =>
    Effect.gen(function*() {
      const seed = testSeed()
      const rng = seeded(seed)
      const bus = yield* makeBus({ maxEvents: 1_000_000, maxBytes: 2 ** 40 })
      // A small alphabet and short topics, so exact topics, prefixes and overlaps collide often.
      const word = (max: number) =>
        Array.from({ length: 1 + rng.int(max) }, () => "ab/"[rng.int(3)]).join("").replace(/^\//, "a")
      const patternOf = () => {
        const r = rng.next()
        if (r < 0.02) return "*"
        const w = word(4)
        return r < 0.5 ? w : `${w}*`
      }
      interface Live {
        readonly sub: EventBus.Subscription
        readonly scope: Scope.CloseableScope
        readonly patterns: ReadonlyArray<string>
        readonly filter: ((e: Event.Event) => boolean) | undefined
        readonly got: Array<string>
        readonly want: Array<string>
      }
      const live: Array<Live> = []
      const join = Effect.gen(function*() {
        const patterns = rng.next() < 0.15 ? [] : Array.from({ length: 1 + rng.int(3) }, patternOf)
        const mod = 2 + rng.int(3)
        const filter = rng.next() < 0.2 ? (e: Event.Event) => Number(e.data) % mod !== 0 : undefined
        const scope = yield* Scope.make()
        const sub = yield* Scope.extend(bus.subscribe({ topics: patterns, ...(filter ? { filter } : {}) }), scope)
        live.push({ sub, scope, patterns, filter, got: [], want: [] })
      })
      for (let i = 0; i < 60; i++) yield* join
      let data = 0
      let checked = 0
      for (let round = 0; round < 300; round++) {
        const batch = Array.from({ length: 1 + rng.int(rng.next() < 0.5 ? 3 : 40) }, () => ({ topic: word(5), data: String(data++) }))
        yield* bus.publishAll(batch)
        for (const l of live) {
          for (const e of batch) {
            const ev = { topic: e.topic, data: e.data } as Event.Event
            if (naiveMatch(l.patterns, e.topic) && (l.filter === undefined || l.filter(ev))) l.want.push(`${e.topic}:${e.data}`)
          }
          if (rng.next() < 0.5) l.got.push(...drain(l.sub))
        }
        if (rng.next() < 0.2 && live.length > 0) {
          const [gone] = live.splice(rng.int(live.length), 1)
          gone!.got.push(...drain(gone!.sub))
          assert.deepStrictEqual(gone!.got, gone!.want, `seed ${seed}: patterns ${JSON.stringify(gone!.patterns)}`)
          checked++
          yield* Scope.close(gone!.scope, Exit.void)
        }
        if (rng.next() < 0.2) yield* join
      }
      for (const l of live) {
        l.got.push(...drain(l.sub))
        assert.deepStrictEqual(l.got, l.want, `seed ${seed}: patterns ${JSON.stringify(l.patterns)}`)
        checked++
      }
      assert.isAbove(checked, 60)
      assert.isAbove(live.reduce((n, l) => n + l.want.length, 0), 1_000, `seed ${seed}: the plan delivered something`)
      const stats = yield* bus.stats
      assert.strictEqual(stats.bufferedEvents, 0)
      assert.strictEqual(stats.bufferedBytes, 0)
      assert.strictEqual(stats.ends.overflow, 0)
    }))
})
