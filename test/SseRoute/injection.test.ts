/**
 * SSE field injection and cursor handling, checked at the byte level with `eventsource-parser`:
 * hostile data round-trips as one event (CR and CRLF arrive as LF), hostile types and topics are
 * refused and never reach a stream, no value forges a field or moves a client's cursor, and every
 * unusable cursor — in the header or the query — gets `200` + `event: reset` + live events.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Net from "node:net"
import { startServer } from "../utils/server.js"
import { openStreamScoped, parseSse, type ParsedEvent, request, waitFor } from "../utils/sse.js"

const HOSTILE_DATA: ReadonlyArray<string> = [
  "plain",
  "a\nb",
  "a\rb",
  "a\r\nb",
  "\n",
  "\r",
  "\r\n",
  "\n\n",
  "a\r\rb\n\r\nc",
  "x\nevent: admin\ndata: pwned\nid: 9999\n\n",
  "x\revent: admin\rid: 9999\r\rretry: 1\r",
  "x\r\nid: 9999\r\n\r\ndata: injected\r\n",
  "\nid\n\nid:\n:comment\nretry: 0",
  "\0",
  "a\0b\nid: 1\0",
  "\uFEFF",
  "\uFEFFdata: bom",
  "\u2028line\u2029sep\u0085nel",
  "",
  " leading space",
  "  two spaces",
  ":colon",
  "data: nested",
  "\x7f\x1b[31mansi\x1b[0m",
  "💥 multi-byte ✓ é",
  "trailing\n",
  "trailing\r",
  "{\"json\":\"with\\nescapes\"}"
]

const VALID_TYPES: ReadonlyArray<string | undefined> = [undefined, "message", "update", "a.b_c~d/e-f:g", ":"]

const HOSTILE_TYPES: ReadonlyArray<string> = [
  "a\nb",
  "a\rb",
  "admin\r\nid: 9999",
  "x\n\ndata: pwned",
  "\0",
  "a\0",
  "\uFEFF",
  "\uFEFFadmin",
  "a\u2028b",
  "a b",
  "",
  "reset",
  "end",
  "é",
  "\uD800",
  "x".repeat(129)
]

const HOSTILE_TOPICS: ReadonlyArray<string> = [
  "a\nb",
  "a\rb",
  "a\r\nb",
  "\0",
  "a\0",
  "",
  "a b",
  "\u2028",
  "\uFEFFt",
  "é",
  "\uDC00",
  "a*",
  "x".repeat(201)
]

/** Percent-encodes a query value; a lone surrogate goes out as its (invalid) UTF-8 bytes. */
const queryValue = (value: string) =>
  value.isWellFormed()
    ? encodeURIComponent(value)
    : value.replace(/[\uD800-\uDFFF]/g, (c) => {
      const code = c.charCodeAt(0)
      return [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)]
        .map((b) => `%${b.toString(16).toUpperCase()}`)
        .join("")
    })

/** What a spec parser must report for published data: CR and CRLF become LF. */
const normalised = (data: string) => data.replace(/\r\n|\r/g, "\n")

const postJson = (url: string, body: unknown) =>
  Effect.promise(() =>
    request(`${url}/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body)
    })
  )

describe("SseRoute injection", () => {
  it.scopedLive("hostile data, types and topics never forge a field or move a cursor (bus and POST)", () =>
    Effect.gen(function*() {
      const { bus, url } = yield* startServer({ route: { publish: true } })
      const stream = yield* openStreamScoped(`${url}/events`)
      const expected: Array<ParsedEvent> = []
      let viaPost = false

      for (const data of HOSTILE_DATA) {
        for (const type of VALID_TYPES) {
          viaPost = !viaPost
          let id: string
          if (viaPost) {
            const res = yield* postJson(url, type === undefined ? { topic: "t", data } : { topic: "t", type, data })
            assert.strictEqual(res.status, 201, res.body)
            id = JSON.parse(res.body).id
          } else {
            const event = yield* bus.publish(type === undefined ? { topic: "t", data } : { topic: "t", type, data })
            id = `${event.id.epoch}-${event.id.seq}`
          }
          expected.push({ id, event: type === undefined || type === "message" ? undefined : type, data: normalised(data) })
        }
      }

      // Refused, by the bus with a typed error and by the route with 400: nothing reaches the stream.
      const refusedBus = []
      const refusedPost = []
      for (const type of HOSTILE_TYPES) {
        const result = yield* Effect.either(bus.publish({ topic: "t", type, data: "REFUSED" }))
        assert.isTrue(Either.isLeft(result), `type ${JSON.stringify(type)} is refused`)
        if (Either.isLeft(result)) refusedBus.push(result.left.reason)
        const res = yield* postJson(url, { topic: "t", type, data: "REFUSED" })
        refusedPost.push(res.status)
        assert.strictEqual(res.status, 400, `POST with type ${JSON.stringify(type)}`)
        assert.strictEqual(JSON.parse(res.body).error, "invalid_event")
      }
      for (const topic of HOSTILE_TOPICS) {
        const result = yield* Effect.either(bus.publish({ topic, data: "REFUSED" }))
        assert.isTrue(Either.isLeft(result), `topic ${JSON.stringify(topic)} is refused`)
        if (Either.isLeft(result)) refusedBus.push(result.left.reason)
        const res = yield* postJson(url, { topic, data: "REFUSED" })
        assert.strictEqual(res.status, 400, `POST with topic ${JSON.stringify(topic)}`)
        refusedPost.push(res.status)
        // The same topic as a subscription filter is a 400 too ("a*" is a valid prefix pattern there).
        if (topic === "a*") continue
        const sub = yield* Effect.promise(() => request(`${url}/events?topic=${queryValue(topic)}`))
        assert.strictEqual(sub.status, 400, `GET with topic ${JSON.stringify(topic)}`)
        assert.strictEqual(JSON.parse(sub.body).error, "invalid_topic")
      }
      for (const data of ["\uD800", "a\uDFFFb"]) {
        const result = yield* Effect.either(bus.publish({ topic: "t", data }))
        assert.isTrue(Either.isLeft(result) && result.left.reason === "InvalidData")
        assert.strictEqual((yield* postJson(url, { topic: "t", data })).status, 400)
      }
      assert.deepStrictEqual(
        new Set(refusedBus),
        new Set(["InvalidType", "InvalidTopic"]),
        "refused with the typed reasons"
      )

      const last = yield* bus.publish({ topic: "t", type: "done", data: "done" })
      const lastId = `${last.id.epoch}-${last.id.seq}`
      expected.push({ id: lastId, event: "done", data: "done" })
      yield* waitFor("the last event", () => stream.text.includes(`id: ${lastId}\n`) && stream.text.endsWith("\n\n"))

      const parsed = stream.parsed()
      assert.deepStrictEqual(parsed.errors, [], "no line is an unknown field or a bad retry")
      assert.strictEqual(parsed.retries.length, 1, "only the opening retry")
      assert.deepStrictEqual(parsed.events, expected, "each event round-trips with its own id and type")
      assert.strictEqual(parsed.lastEventId, lastId, "the cursor only ever moved to real ids")
      assert.deepStrictEqual(
        stream.text.split("\n").filter((line) => line.startsWith("id")),
        expected.map((e) => `id: ${e.id}`),
        "no id line but the real ones (an id-only block would move the cursor unseen by the parser)"
      )
      assert.notInclude(stream.text, "\r", "the server never emits a CR")
      assert.isFalse(stream.text.startsWith("\uFEFF"), "no BOM")
      assert.notInclude(stream.text, "REFUSED", "no refused event reached the stream")

      // Chunk-split invariance: fed one character at a time, the parser sees the same events.
      const pieces = parseSse(stream.text.split(""))
      assert.deepStrictEqual(pieces.events, parsed.events)
      console.log(
        `[injection] ${expected.length - 1} hostile-data events round-tripped (${HOSTILE_DATA.length} data × ${VALID_TYPES.length} types, ` +
          `bus and POST); refused ${refusedBus.length} on the bus and ${refusedPost.length} over POST`
      )
    }), 30_000)

  it.scopedLive("every unusable cursor, in the header and in the query, gets 200 + reset at the head, then live events", () =>
    Effect.gen(function*() {
      const { bus, port, url } = yield* startServer({ bus: { log: { maxEvents: 10 } }, route: { maxReplay: 3 } })
      for (let i = 0; i < 30; i++) yield* bus.publish({ topic: "t", data: `old ${i}` })
      const epoch = (yield* bus.stats).log.epoch

      const cases: ReadonlyArray<{ readonly name: string; readonly reason: string; readonly cursor: (head: number) => string }> = [
        { name: "garbage", reason: "invalid", cursor: () => "garbage!" },
        { name: "empty", reason: "invalid", cursor: () => "" },
        { name: "negative", reason: "invalid", cursor: () => "-1" },
        { name: "negative seq", reason: "invalid", cursor: () => `${epoch}--5` },
        { name: "bare number", reason: "invalid", cursor: (head) => String(head) },
        { name: "huge", reason: "invalid", cursor: () => `${epoch}-99999999999999999999` },
        { name: "unsafe integer", reason: "invalid", cursor: () => `${epoch}-9007199254740993` },
        { name: "too long", reason: "invalid", cursor: () => `${"a".repeat(100)}-1` },
        { name: "other epoch", reason: "epoch-mismatch", cursor: (head) => `zz${epoch}-${head}` },
        { name: "expired", reason: "expired", cursor: () => `${epoch}-1` },
        { name: "future", reason: "future", cursor: (head) => `${epoch}-${head + 1_000}` },
        { name: "too far behind", reason: "too-far-behind", cursor: (head) => `${epoch}-${head - 8}` }
      ]
      const seen: Array<string> = []
      for (const c of cases) {
        for (const via of ["header", "query"] as const) {
          const head = (yield* bus.stats).log.head
          const cursor = c.cursor(head)
          const path = via === "query" ? `/events?topic=t&lastEventId=${encodeURIComponent(cursor)}` : "/events?topic=t"
          const stream = yield* openStreamScoped(`${url}${path}`, via === "header" ? { "last-event-id": cursor } : {})
          const label = `${c.name} (${via}: ${JSON.stringify(cursor)})`
          assert.strictEqual(stream.status, 200, label)
          assert.strictEqual(stream.headers["content-type"], "text/event-stream", label)
          yield* waitFor(`the reset for ${label}`, () => stream.parsed().events.length >= 1)
          const live = yield* bus.publish({ topic: "t", data: `live after ${c.name}` })
          yield* waitFor(`the live event for ${label}`, () => stream.parsed().events.length >= 2)
          const [reset, next] = stream.parsed().events
          assert.strictEqual(reset!.event, "reset", label)
          assert.strictEqual(reset!.id, `${epoch}-${head}`, `${label}: the reset's id is the head`)
          const data = JSON.parse(reset!.data)
          assert.strictEqual(data.reason, c.reason, label)
          assert.strictEqual(data.head, `${epoch}-${head}`, label)
          assert.deepStrictEqual(next, { id: `${epoch}-${live.id.seq}`, event: undefined, data: `live after ${c.name}` }, label)
          seen.push(`${c.name}/${via}`)
          stream.close()
        }
      }

      // Non-ASCII bytes in the header (sent raw: Node's client refuses them).
      const socket = yield* Effect.acquireRelease(
        Effect.promise(() =>
          new Promise<Net.Socket>((resolve) => {
            const s = Net.connect({ port, host: "127.0.0.1" }, () => resolve(s))
          })
        ),
        (s) => Effect.sync(() => s.destroy())
      )
      let raw = ""
      socket.on("data", (chunk: Buffer) => {
        raw += chunk.toString("utf8")
      })
      socket.write(
        Buffer.concat([
          Buffer.from("GET /events?topic=t HTTP/1.1\r\nHost: x\r\nLast-Event-ID: "),
          Buffer.from("café-€\u2028", "utf8"),
          Buffer.from("\r\n\r\n")
        ])
      )
      yield* waitFor("the reset for a non-ASCII header", () => raw.includes("event: reset"))
      assert.match(raw, /^HTTP\/1\.1 200 /)
      assert.include(raw, "\"reason\":\"invalid\"")

      // A valid cursor within reach resumes with no reset.
      const head = (yield* bus.stats).log.head
      const resumed = yield* openStreamScoped(`${url}/events?topic=t`, { "last-event-id": `${epoch}-${head - 2}` })
      yield* waitFor("the replay", () => resumed.parsed().events.length >= 2)
      assert.deepStrictEqual(resumed.parsed().events.map((e) => e.id), [`${epoch}-${head - 1}`, `${epoch}-${head}`])
      console.log(`[cursors] ${seen.length} cursor cases answered 200 + reset + live: ${seen.join(", ")}`)
    }), 30_000)
})
