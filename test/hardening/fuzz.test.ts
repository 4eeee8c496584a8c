/**
 * Injection fuzz: 100,000 seeded hostile publishes (test/utils/fuzz.ts), most through `bus.publish`,
 * one in fifty through `POST /events`, read back from one live stream by two real parsers at once —
 * `eventsource-parser` on the bytes as they arrive, and the Effect client's decoder
 * (`src/internal/sseClientDecoder.ts`) on the same bytes cut at seeded random places. Every publish
 * yields exactly one event with the documented normalisation (CR and CRLF become LF), or a typed
 * refusal (`400`/`413` JSON over HTTP). Every line of the stream is audited: only `id:`, `event:`,
 * `data:`, the one opening `retry:`, comments and blank lines, and the id lines are exactly the log's
 * ids, so no payload forges a field or moves a cursor.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { createParser } from "eventsource-parser"
import * as Http from "node:http"
import { Decoder, makeCursor, TOO_LARGE } from "../../src/internal/sseClientDecoder.js"
import { type FuzzCase, fuzzCases } from "../utils/fuzz.js"
import { seeded, testSeed } from "../utils/random.js"
import { startServer } from "../utils/server.js"
import { waitFor, waitForEffect } from "../utils/sse.js"

const CASES = 100_000
const BATCH = 2_500
const POST_EVERY = 50
const MAX_EVENT_BYTES = 64 * 1024

interface Seen {
  readonly id: string | undefined
  readonly event: string | undefined
  readonly data: string
}

/** Every line of the stream, checked as it arrives. */
const auditor = () => {
  const audit = { ids: [] as Array<string>, events: 0, retries: 0, comments: 0, other: [] as Array<string>, crs: 0 }
  let carry = ""
  const line = (l: string) => {
    if (l === "" || l.startsWith("data: ")) return
    if (l.startsWith("id: ")) audit.ids.push(l.slice(4))
    else if (l.startsWith("event: ")) audit.events++
    else if (l.startsWith("retry: ")) audit.retries++
    else if (l.startsWith(":")) audit.comments++
    else if (audit.other.length < 10) audit.other.push(JSON.stringify(l.slice(0, 80)))
  }
  return {
    audit,
    feed: (text: string) => {
      if (text.includes("\r")) audit.crs++
      const lines = (carry + text).split("\n")
      carry = lines.pop()!
      for (const l of lines) line(l)
    }
  }
}

/** `POST /events` on a kept-alive connection: the status and the JSON body. */
const post = (url: string, agent: Http.Agent, body: string) =>
  Effect.async<{ status: number; body: { id?: string; error?: string; message?: string } }>((resume) => {
    const req = Http.request(`${url}/events`, {
      method: "POST",
      agent,
      headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) }
    })
    req.on("error", (e) => resume(Effect.die(e)))
    req.on("response", (res) => {
      let text = ""
      res.setEncoding("utf8")
      res.on("data", (c: string) => (text += c))
      res.on("end", () => resume(Effect.succeed({ status: res.statusCode ?? 0, body: JSON.parse(text) })))
    })
    req.end(body)
  })

const STATUS: Record<string, [number, string]> = {
  InvalidTopic: [400, "invalid_event"],
  InvalidType: [400, "invalid_event"],
  InvalidData: [400, "invalid_event"],
  TooLarge: [413, "payload_too_large"]
}

describe("injection fuzz", () => {
  it.scopedLive("100,000 seeded hostile publishes: one event each, normalised, or a clear refusal; no forged field", () =>
    Effect.gen(function*() {
      const seed = testSeed()
      const label = `seed ${seed} (SLUICE_TEST_SEED=${seed} replays it)`
      const gen = fuzzCases(seed, { maxEventBytes: MAX_EVENT_BYTES })
      const cuts = seeded(seed ^ 0x5eed)
      const { bus, url } = yield* startServer({
        bus: { maxEventBytes: MAX_EVENT_BYTES, maxEvents: 10 * BATCH, maxBytes: 256 * 1024 * 1024, log: { maxEvents: 2 * BATCH } },
        route: { publish: true, heartbeat: "1 hour", maxBodyBytes: 2 * 1024 * 1024 }
      })
      const agent = new Http.Agent({ keepAlive: true, maxSockets: 8 })
      yield* Effect.addFinalizer(() => Effect.sync(() => agent.destroy()))

      // The reader: one live stream of every topic, parsed twice.
      const parsed: Array<Seen> = []
      const decoded: Array<Seen> = []
      const parserErrors: Array<string> = []
      const decoder = new Decoder(makeCursor(undefined), 4 * MAX_EVENT_BYTES)
      const parser = createParser({
        onEvent: (e) => parsed.push({ id: e.id, event: e.event, data: e.data }),
        onError: (e) => parserErrors.push(e.message)
      })
      const text = new TextDecoder("utf-8", { ignoreBOM: true })
      const lines = auditor()
      let decoderOverflow = false
      const req = Http.get(`${url}/events`, { agent: false, headers: { accept: "text/event-stream" } })
      yield* Effect.addFinalizer(() => Effect.sync(() => req.destroy()))
      req.on("error", () => {})
      req.on("response", (res) => {
        res.on("data", (chunk: Buffer) => {
          const t = text.decode(chunk, { stream: true })
          lines.feed(t)
          parser.feed(t)
          // The same bytes, cut at other places (inside multi-byte characters too).
          for (let at = 0; at < chunk.length;) {
            const end = Math.min(chunk.length, at + 1 + cuts.int(cuts.next() < 0.5 ? 7 : 4096))
            for (const item of decoder.feed(chunk.subarray(at, end))) {
              if (item === TOO_LARGE) decoderOverflow = true
              else decoded.push({ id: item._tag === "Message" ? item.id : item.head, event: item._tag === "Message" ? item.type : "reset", data: item._tag === "Message" ? item.data : "" })
            }
            at = end
          }
        })
      })
      yield* waitForEffect("the stream", bus.stats, (s) => s.subscribers === 1)

      const refused: Record<string, number> = {}
      const via = { bus: 0, post: 0 }
      let accepted = 0
      let epoch = ""
      const started = Date.now()
      const phases = { bus: 0, post: 0, read: 0 }
      let mark = Date.now()
      const lap = (phase: keyof typeof phases) => {
        const now = Date.now()
        phases[phase] += now - mark
        mark = now
      }
      for (let b = 0; b < CASES / BATCH; b++) {
        const batch: Array<{ seq: number; c: FuzzCase }> = []
        const posts: Array<FuzzCase> = []
        for (let i = 0; i < BATCH; i++) {
          const c = gen.next()
          if ((b * BATCH + i) % POST_EVERY === 0) {
            posts.push(c)
            continue
          }
          via.bus++
          const input = c.type === undefined ? { topic: c.topic, data: c.data } : { topic: c.topic, type: c.type, data: c.data }
          const result = yield* Effect.either(bus.publish(input))
          if (c.expect._tag === "Accepted") {
            assert.isTrue(Either.isRight(result), `${label}: accepted ${JSON.stringify(input).slice(0, 200)}`)
            if (Either.isRight(result)) {
              epoch = result.right.id.epoch
              batch.push({ seq: result.right.id.seq, c })
            }
          } else {
            assert.isTrue(Either.isLeft(result), `${label}: refused ${JSON.stringify(input).slice(0, 200)}`)
            if (Either.isLeft(result)) assert.strictEqual(result.left.reason, c.expect.reason, label)
            refused[c.expect.reason] = (refused[c.expect.reason] ?? 0) + 1
          }
        }
        lap("bus")
        yield* Effect.forEach(posts, (c) =>
          Effect.gen(function*() {
            via.post++
            const res = yield* post(url, agent, JSON.stringify({ topic: c.topic, type: c.type, data: c.data }))
            if (c.expect._tag === "Accepted") {
              assert.strictEqual(res.status, 201, `${label}: ${JSON.stringify(res.body)}`)
              batch.push({ seq: Number(res.body.id!.split("-")[1]), c })
            } else {
              const [status, error] = STATUS[c.expect.reason]!
              assert.deepStrictEqual([res.status, res.body.error, typeof res.body.message], [status, error, "string"], label)
              refused[c.expect.reason] = (refused[c.expect.reason] ?? 0) + 1
            }
          }), { concurrency: 8, discard: true })

        lap("post")
        batch.sort((x, y) => x.seq - y.seq)
        accepted += batch.length
        yield* waitFor(
          `batch ${b}: ${batch.length} events parsed (${label})`,
          () => parsed.length >= batch.length && decoded.length >= batch.length,
          30_000
        )
        for (let i = 0; i < batch.length; i++) {
          const { seq, c } = batch[i]!
          if (c.expect._tag !== "Accepted") continue
          const id = `${epoch}-${seq}`
          const p = parsed[i]!
          const d = decoded[i]!
          if (p.id !== id || p.event !== c.expect.event || p.data !== c.expect.data) {
            assert.deepStrictEqual(p, { id, event: c.expect.event, data: c.expect.data }, `${label}: eventsource-parser, input ${JSON.stringify(c).slice(0, 300)}`)
          }
          if (d.id !== id || d.event !== c.expect.type || d.data !== c.expect.data) {
            assert.deepStrictEqual(d, { id, event: c.expect.type, data: c.expect.data }, `${label}: the client's decoder, input ${JSON.stringify(c).slice(0, 300)}`)
          }
          if (lines.audit.ids[i] !== id) {
            assert.strictEqual(lines.audit.ids[i], id, `${label}: the id lines are the log's ids`)
          }
        }
        lap("read")
        // Nothing more than the batch arrived.
        assert.strictEqual(parsed.length, batch.length, label)
        assert.strictEqual(decoded.length, batch.length, label)
        assert.strictEqual(lines.audit.ids.length, batch.length, label)
        parsed.length = 0
        decoded.length = 0
        lines.audit.ids.length = 0
      }
      const elapsed = Date.now() - started
      assert.deepStrictEqual(parserErrors, [], `${label}: no unknown field, no bad retry`)
      assert.deepStrictEqual(lines.audit.other, [], `${label}: every line is id, event, data, retry or a comment`)
      assert.strictEqual(lines.audit.retries, 1, `${label}: only the opening retry`)
      assert.strictEqual(lines.audit.crs, 0, `${label}: the server never emits a CR`)
      assert.isFalse(decoderOverflow)
      assert.strictEqual(decoder.dropped, 0, `${label}: the client dropped nothing as a duplicate`)
      const totalRefused = Object.values(refused).reduce((a, n) => a + n, 0)
      assert.strictEqual(accepted + totalRefused, CASES)
      for (const reason of Object.keys(STATUS)) assert.isAbove(refused[reason] ?? 0, 0, `${label}: some ${reason}`)
      assert.isAbove(accepted, CASES / 2)
      console.log(
        `[fuzz] ${label}: ${CASES} publishes (${via.bus} bus, ${via.post} POST) in ${(elapsed / 1000).toFixed(1)} s ` +
          `(publishing on the bus ${phases.bus} ms, POSTs ${phases.post} ms, reading and checking ${phases.read} ms): ` +
          `${accepted} events parsed identically by eventsource-parser and the client's decoder; refused ${JSON.stringify(refused)}; ` +
          `${lines.audit.events} event lines, 0 forged lines`
      )
    }), 240_000)
})
