import { afterAll, assert, beforeEach, describe, it } from "@effect/vitest"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type * as Event from "../../src/Event.js"
import * as EventBus from "../../src/EventBus.js"
import type * as EventLog from "../../src/EventLog.js"
import { EventLog as EventLogTag } from "../../src/EventLog.js"
import * as RedisLog from "../../src/EventLog/Redis.js"
import { backoffMillis } from "../../src/internal/redisClient.js"
import { tailLag } from "../../src/internal/redisLog.js"
import { APPEND } from "../../src/internal/redisScripts.js"
import { suite } from "../EventLogSuite.js"
import { admin, deletePrefixes, freePort, privateRedis, REDIS_URL, requireRedis, testPrefix } from "../utils/redis.js"

beforeEach(requireRedis)

const prefixes: Array<string> = []
const prefix = (name: string): string => {
  const p = testPrefix(name)
  prefixes.push(p)
  return p
}
afterAll(() => requireRedis().then(() => deletePrefixes(prefixes), () => undefined))

suite("redis", RedisLog.layer({ url: REDIS_URL, prefix: prefix("suite") }), {
  retention: { layer: RedisLog.layer({ url: REDIS_URL, prefix: prefix("suite-retention"), maxEvents: 200 }), maxEvents: 200 }
})

const inputs = (n: number, from = 0): Array<Event.EventInput> =>
  Array.from({ length: n }, (_, i) => ({ topic: "t", data: `e${from + i}` }))

/** Waits (real time, at most 10 s) until `check` holds. */
const eventually = (check: () => boolean, what: string) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 10_000
    while (!check() && Date.now() < deadline) yield* Effect.sleep("5 millis")
    assert.isTrue(check(), what)
  })

/** Runs one command on a fresh admin connection. */
const redis = (url: string, ...args: Array<string>) =>
  Effect.promise(async () => {
    const a = await admin(url)
    try {
      return await a.send(...args)
    } finally {
      await a.close()
    }
  })

const keys = (p: string) => ({ meta: `{${p}}:meta`, stream: `{${p}}:stream` })

/** A follower recording what it is given. */
const record = (log: EventLog.EventLog["Type"]) =>
  Effect.gen(function*() {
    const received: Array<Event.Event> = []
    const resets: Array<Event.EventId> = []
    const head = yield* log.follow((events) => received.push(...events), (h) => resets.push(h))
    return { received, resets, head }
  })

describe("EventLog Redis backend", () => {
  it.live("deleting the log's keys starts a new epoch: followers reset, then see the new epoch's events", () =>
    Effect.gen(function*() {
      const p = prefix("delete")
      const log = yield* RedisLog.make({ url: REDIS_URL, prefix: p, blockTimeout: "100 millis" })
      yield* log.append(inputs(3))
      const before = yield* log.epoch
      const { received, resets } = yield* record(log)
      yield* redis(REDIS_URL, "DEL", keys(p).meta, keys(p).stream)
      yield* eventually(() => resets.length === 1, "the follower was reset")
      const epoch = yield* log.epoch
      assert.notStrictEqual(epoch, before)
      assert.deepStrictEqual(resets[0], { epoch, seq: 0 })
      const [next] = yield* log.append(inputs(1, 10))
      assert.deepStrictEqual(next!.id, { epoch, seq: 1 })
      yield* eventually(() => received.length === 1, "the new epoch's event was followed")
      assert.deepStrictEqual(received, [next])
    }).pipe(Effect.scoped))

  it.live("FLUSHALL: bus subscribers end with log-reset, a resume gets epoch-mismatch, then new events", () =>
    Effect.gen(function*() {
      const server = yield* privateRedis
      const context = yield* Layer.build(
        EventBus.layer().pipe(Layer.provide(RedisLog.layer({ url: server.url, prefix: "flush", blockTimeout: "100 millis" })))
      )
      const bus = Context.get(context, EventBus.EventBus)
      const sub = yield* bus.subscribe()
      const stored = yield* bus.publish({ topic: "t", data: "before" })
      const [first] = yield* sub.takeAll
      assert.deepStrictEqual([...first].map((e) => e.id), [stored.id])
      yield* redis(server.url, "FLUSHALL")
      assert.strictEqual(yield* sub.ended, "log-reset")
      const again = yield* bus.subscribe({ after: stored.id })
      assert.strictEqual(again.outcome._tag === "Reset" && again.outcome.reason, "epoch-mismatch")
      const next = yield* bus.publish({ topic: "t", data: "after" })
      assert.notStrictEqual(next.id.epoch, stored.id.epoch)
      const [events] = yield* again.takeAll
      assert.deepStrictEqual([...events].map((e) => e.data), ["after"])
    }).pipe(Effect.scoped))

  it.live("a stream gone while its meta remains answers Expired, and appends continue the sequence", () =>
    Effect.gen(function*() {
      const p = prefix("gone")
      const log = yield* RedisLog.make({ url: REDIS_URL, prefix: p })
      const epoch = yield* log.epoch
      yield* log.append(inputs(5))
      yield* redis(REDIS_URL, "DEL", keys(p).stream)
      assert.strictEqual(yield* log.earliest, 6)
      const error = yield* Effect.flip(log.read(2, { limit: 10 }))
      assert.strictEqual(error.reason, "Expired")
      const [next] = yield* log.append(inputs(1))
      assert.deepStrictEqual(next!.id, { epoch, seq: 6 })
      assert.deepStrictEqual((yield* log.read(5, { limit: 10 })).events, [next])
    }).pipe(Effect.scoped))

  it.live("after SCRIPT FLUSH every operation falls back to EVAL, which caches the script again", () =>
    Effect.gen(function*() {
      const server = yield* privateRedis
      const log = yield* RedisLog.make({ url: server.url, prefix: "noscript" })
      yield* log.append(inputs(2))
      yield* redis(server.url, "SCRIPT", "FLUSH")
      assert.deepStrictEqual(yield* redis(server.url, "SCRIPT", "EXISTS", APPEND.sha), [0])
      const stored = yield* log.append(inputs(1, 2))
      assert.strictEqual(stored[0]!.id.seq, 3)
      assert.strictEqual((yield* log.head).seq, 3)
      assert.deepStrictEqual((yield* log.read(0, { limit: 10 })).events.map((e) => e.data), ["e0", "e1", "e2"])
      assert.deepStrictEqual(yield* redis(server.url, "SCRIPT", "EXISTS", APPEND.sha), [1])
    }).pipe(Effect.scoped))

  it.live("an unreachable Redis does not fail the layer: its commands fail at once with Unavailable", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const log = yield* RedisLog.make({ url: `redis://127.0.0.1:${port}`, connectTimeout: "2 seconds" })
      const commands: ReadonlyArray<Effect.Effect<unknown, EventLog.EventLogError>> = [
        log.epoch,
        log.head,
        log.append(inputs(1)),
        log.read(0, { limit: 1 })
      ]
      for (const command of commands) {
        const error = yield* Effect.flip(command)
        assert.strictEqual(error._tag, "EventLogError")
        assert.strictEqual(error.reason, "Unavailable")
        assert.match(error.message, /^Redis [A-Z]+ failed/)
      }
    }).pipe(Effect.scoped))

  it.live("layerConfig reads its options from Config", () => {
    const p = prefix("config")
    const config = ConfigProvider.fromMap(new Map([["REDIS_URL", REDIS_URL], ["REDIS_PREFIX", p]]))
    return Effect.gen(function*() {
      const log = yield* EventLogTag
      const [stored] = yield* log.append(inputs(1))
      assert.strictEqual(stored!.id.seq, 1)
      assert.strictEqual(yield* redis(REDIS_URL, "XLEN", keys(p).stream), 1)
    }).pipe(
      Effect.provide(
        RedisLog.layerConfig({
          url: Config.string("REDIS_URL"),
          prefix: Config.string("REDIS_PREFIX"),
          maxEvents: Config.withDefault(Config.integer("REDIS_MAX_EVENTS"), undefined)
        }).pipe(Layer.provide(Layer.setConfigProvider(config)))
      )
    )
  })

  it.live("bad options fail with InvalidOption, naming the option", () =>
    Effect.gen(function*() {
      const cases: Array<[RedisLog.RedisOptions, string]> = [
        [{ url: "http://127.0.0.1:6379" }, "url"],
        [{ prefix: "a{b}" }, "prefix"],
        [{ prefix: "" }, "prefix"],
        [{ maxEvents: 0 }, "maxEvents"],
        [{ maxEvents: 1.5 }, "maxEvents"],
        [{ idempotencyWindow: "0 millis" }, "idempotencyWindow"],
        [{ commandTimeout: "forever" as never }, "commandTimeout"]
      ]
      for (const [options, name] of cases) {
        const error = yield* Effect.flip(Effect.scoped(RedisLog.make(options)))
        assert.strictEqual(error.reason, "InvalidOption", JSON.stringify(options))
        assert.include(error.message, name)
      }
    }))

  it.live("publish fails fast with Unavailable while Redis is down; the log and its follower recover by themselves", () =>
    Effect.gen(function*() {
      const server = yield* privateRedis
      const log = yield* RedisLog.make({ url: server.url, prefix: "outage", blockTimeout: "100 millis", commandTimeout: "30 seconds" })
      const { received, resets } = yield* record(log)
      const before = yield* log.append(inputs(2))
      yield* eventually(() => received.length === 2, "followed before the outage")
      yield* server.stop
      const started = Date.now()
      const error = yield* Effect.flip(log.append(inputs(1)))
      assert.strictEqual(error.reason, "Unavailable")
      assert.isBelow(Date.now() - started, 10_000, "failed without waiting for the 30 s command timeout")
      yield* server.start
      // The new server has no data: a new epoch, so the follower resets, then follows again.
      let after: ReadonlyArray<Event.Event> = []
      for (let i = 0; i < 800 && after.length === 0; i++) {
        after = yield* log.append(inputs(1, 100)).pipe(Effect.orElseSucceed(() => []), Effect.zipLeft(Effect.sleep("25 millis")))
      }
      assert.strictEqual(after.length, 1, "appends work again")
      assert.notStrictEqual(after[0]!.id.epoch, before[0]!.id.epoch)
      yield* eventually(() => resets.some((h) => h.epoch === after[0]!.id.epoch), "the follower reset to the new epoch")
      const [next] = yield* log.append(inputs(1, 200))
      yield* eventually(() => received.some((e) => e.id.epoch === next!.id.epoch && e.id.seq === next!.id.seq), "followed after the outage")
    }).pipe(Effect.scoped))

  it.live("connections killed while publishing: retried idempotent appends are stored once and followed in order", () =>
    Effect.gen(function*() {
      const server = yield* privateRedis
      const log = yield* RedisLog.make({ url: server.url, prefix: "kill", blockTimeout: "100 millis" })
      const { received, resets, head } = yield* record(log)
      const n = 200
      let failures = 0
      for (let i = 0; i < n; i++) {
        if (i === 50 || i === 120) yield* redis(server.url, "CLIENT", "KILL", "TYPE", "normal")
        const input = { topic: "t", data: `e${i}`, idempotencyKey: `k${i}` }
        let stored: ReadonlyArray<Event.Event> | undefined
        for (let attempt = 0; stored === undefined && attempt < 1_000; attempt++) {
          stored = yield* log.append([input]).pipe(
            Effect.catchTag("EventLogError", (e) => {
              assert.strictEqual(e.reason, "Unavailable")
              failures++
              return Effect.as(Effect.sleep("10 millis"), undefined)
            })
          )
        }
        assert.strictEqual(stored?.[0]!.id.seq, head.seq + i + 1)
      }
      assert.isAbove(failures, 0, "the killed connection made some appends fail")
      yield* eventually(() => received.length >= n, "every acknowledged event was followed")
      assert.deepStrictEqual(resets, [])
      assert.deepStrictEqual(received.map((e) => e.data), inputs(n).map((e) => e.data))
      assert.deepStrictEqual(received.map((e) => e.id.seq), Array.from({ length: n }, (_, i) => head.seq + i + 1))
      const lag = yield* Metric.value(Metric.tagged(tailLag, "log", "kill"))
      assert.isAbove(lag.count, 0, "the tail reader records its lag")
    }).pipe(Effect.scoped))

  it.live("events trimmed before the tail read them reset the followers, which continue after the gap", () =>
    Effect.gen(function*() {
      const p = prefix("gap")
      const log = yield* RedisLog.make({ url: REDIS_URL, prefix: p, blockTimeout: "100 millis" })
      yield* log.append(inputs(2))
      const { received, resets, head } = yield* record(log)
      // One atomic script appends 10 entries the way the log does and trims the first 5 of them:
      // the blocked XREAD is served after it and sees the stream start 5 past its position.
      yield* redis(
        REDIS_URL,
        "EVAL",
        `local m = redis.call('HGET', KEYS[1], 'm')
         local s = tonumber(redis.call('HGET', KEYS[1], 's'))
         for i = 1, 10 do
           redis.call('XADD', KEYS[2], m .. '-' .. (s + i), 't', '1', 'p', 't', 'y', 'message', 'd', 'x' .. i)
         end
         redis.call('HSET', KEYS[1], 's', s + 10)
         redis.call('XTRIM', KEYS[2], 'MINID', m .. '-' .. (s + 6))
         return s`,
        "2",
        keys(p).meta,
        keys(p).stream
      )
      yield* eventually(() => received.length === 5, "the retained events were followed")
      assert.deepStrictEqual(resets, [{ epoch: head.epoch, seq: head.seq + 5 }])
      assert.deepStrictEqual(received.map((e) => e.data), ["x6", "x7", "x8", "x9", "x10"])
    }).pipe(Effect.scoped))

  it.live("maxAge trims events older than it on append, and an idle stream expires", () =>
    Effect.gen(function*() {
      const p = prefix("age")
      const log = yield* RedisLog.make({ url: REDIS_URL, prefix: p, maxAge: "300 millis" })
      yield* log.append(inputs(5))
      const ttl = (yield* redis(REDIS_URL, "PTTL", keys(p).stream)) as number
      // -2: already expired (a slow machine took longer than maxAge to ask).
      assert.isTrue(ttl === -2 || (ttl > 0 && ttl <= 300), `the stream expires with maxAge (PTTL ${ttl})`)
      yield* Effect.sleep("700 millis")
      const [next] = yield* log.append(inputs(1, 5))
      assert.strictEqual(yield* log.earliest, next!.id.seq)
      assert.strictEqual((yield* Effect.flip(log.read(0, { limit: 10 }))).reason, "Expired")
    }).pipe(Effect.scoped))

  it("reconnect delays are capped, exponential and jittered into [1/2, 1] of the step", () => {
    assert.deepStrictEqual([0, 1, 2, 3].map((n) => backoffMillis(n, 1)), [100, 200, 400, 800])
    assert.deepStrictEqual([0, 1, 2, 3].map((n) => backoffMillis(n, 0)), [50, 100, 200, 400])
    assert.strictEqual(backoffMillis(6, 1), 5_000)
    assert.strictEqual(backoffMillis(1_000, 1), 5_000)
    assert.strictEqual(backoffMillis(1_000, 0), 2_500)
  })

  describe("group commit", () => {
    it.live("concurrent appends share script calls, each keeping its own consecutive range and result", () =>
      Effect.gen(function*() {
        const log = yield* RedisLog.make({ url: REDIS_URL, prefix: prefix("group") })
        const h0 = (yield* log.head).seq
        const results = yield* Effect.forEach(
          Array.from({ length: 200 }, (_, i) => i),
          (i) => log.append(inputs(1 + (i % 3), i * 10)),
          { concurrency: "unbounded" }
        )
        for (const [i, result] of results.entries()) {
          assert.deepStrictEqual(result.map((e) => e.data), inputs(1 + (i % 3), i * 10).map((e) => e.data))
          assert.deepStrictEqual(result.map((e) => e.id.seq - result[0]!.id.seq), result.map((_, j) => j))
        }
        const total = results.reduce((n, r) => n + r.length, 0)
        assert.strictEqual((yield* log.head).seq, h0 + total)
        const seqs = results.flat().map((e) => e.id.seq).sort((a, b) => a - b)
        assert.deepStrictEqual(seqs, Array.from({ length: total }, (_, i) => h0 + i + 1))
      }).pipe(Effect.scoped))

    it.live("concurrent appends with one idempotency key store it once", () =>
      Effect.gen(function*() {
        const log = yield* RedisLog.make({ url: REDIS_URL, prefix: prefix("group-idem") })
        const results = yield* Effect.all(
          Array.from({ length: 10 }, () => log.append([{ topic: "t", data: "x", idempotencyKey: "same" }])),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(new Set(results.map((r) => r[0]!.id.seq)), new Set([1]))
        assert.strictEqual((yield* log.head).seq, 1)
      }).pipe(Effect.scoped))

    it.live("an append interrupted before it is sent appends nothing", () =>
      Effect.gen(function*() {
        const log = yield* RedisLog.make({ url: REDIS_URL, prefix: prefix("group-interrupt") })
        const fiber = yield* Effect.fork(log.append(inputs(3)))
        yield* Fiber.interrupt(fiber)
        const [after] = yield* log.append(inputs(1, 3))
        assert.strictEqual(after!.id.seq, 1)
        assert.deepStrictEqual((yield* log.read(0, { limit: 10 })).events.map((e) => e.data), ["e3"])
      }).pipe(Effect.scoped))
  })

  describe("idempotency", () => {
    it.live("a repeated key returns the first event and appends nothing, on the same node and on another", () =>
      Effect.gen(function*() {
        const p = prefix("idem")
        const nodeA = yield* RedisLog.make({ url: REDIS_URL, prefix: p })
        const nodeB = yield* RedisLog.make({ url: REDIS_URL, prefix: p })
        const [first] = yield* nodeA.append([{ topic: "t", data: "one", idempotencyKey: "order-1" }])
        const [same] = yield* nodeA.append([{ topic: "t", data: "one", idempotencyKey: "order-1" }])
        const [other] = yield* nodeB.append([{ topic: "t", data: "one", idempotencyKey: "order-1" }])
        assert.deepStrictEqual(same, first)
        assert.deepStrictEqual(other, first)
        assert.strictEqual((yield* nodeB.head).seq, first!.id.seq)
        // In one batch: the repeat of a key appended earlier in the batch, and a fresh key.
        const batch = yield* nodeB.append([
          { topic: "t", data: "two", idempotencyKey: "order-2" },
          { topic: "t", data: "two", idempotencyKey: "order-2" },
          { topic: "t", data: "one", idempotencyKey: "order-1" },
          { topic: "t", data: "plain" }
        ])
        assert.deepStrictEqual(batch.map((e) => e.id.seq), [2, 2, 1, 3].map((s) => first!.id.seq - 1 + s))
        assert.deepStrictEqual((yield* nodeA.read(0, { limit: 10 })).events.map((e) => e.data), ["one", "two", "plain"])
      }).pipe(Effect.scoped))

    it.live("a key is forgotten after the window", () =>
      Effect.gen(function*() {
        const log = yield* RedisLog.make({ url: REDIS_URL, prefix: prefix("idem-window"), idempotencyWindow: "200 millis" })
        const [first] = yield* log.append([{ topic: "t", data: "x", idempotencyKey: "k" }])
        yield* Effect.sleep("600 millis")
        const [second] = yield* log.append([{ topic: "t", data: "x", idempotencyKey: "k" }])
        assert.strictEqual(second!.id.seq, first!.id.seq + 1)
      }).pipe(Effect.scoped))

    it.live("bad keys are refused with InvalidInput and nothing of the batch is appended", () =>
      Effect.gen(function*() {
        const log = yield* RedisLog.make({ url: REDIS_URL, prefix: prefix("idem-bad") })
        for (const key of ["", "x".repeat(201), "é".repeat(101), "a\nb", "tab\there", "\u007f"]) {
          const error = yield* Effect.flip(log.append([{ topic: "t", data: "ok" }, { topic: "t", data: "x", idempotencyKey: key }]))
          assert.strictEqual(error.reason, "InvalidInput", JSON.stringify(key))
          assert.include(error.message, "idempotency key")
        }
        assert.strictEqual((yield* log.head).seq, 0)
        const [ok] = yield* log.append([{ topic: "t", data: "x", idempotencyKey: "é".repeat(100) }])
        assert.strictEqual(ok!.id.seq, 1)
      }).pipe(Effect.scoped))
  })
})
