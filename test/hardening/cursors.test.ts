/**
 * The cursor table: every odd `Last-Event-ID`, sent in the header and in the `lastEventId` query
 * parameter (and both at once, disagreeing), over raw sockets so that any byte can be sent. Each
 * answer is checked as a whole event sequence: either an exact resume (the events after the cursor,
 * then the live one) or `reset` at the head (then the live one). Never a 5xx, never a crash (see
 * test/setup.ts), and each answer comes fast. Only a cursor past Node's header limit (16 KiB) is
 * refused before the route runs: `431` from Node's HTTP parser; raise `maxHeaderSize` and it gets
 * its reset like any other.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Net from "node:net"
import { startServer, type TestServer } from "../utils/server.js"
import { type ParsedStream, parseSse, waitFor, waitForEffect } from "../utils/sse.js"

type Expect =
  | { readonly _tag: "reset"; readonly reason: string }
  | { readonly _tag: "resume"; readonly after: number }
  | { readonly _tag: "status"; readonly status: number }

interface Case {
  readonly name: string
  /** The cursor, given the log's epoch and head. */
  readonly cursor: (epoch: string, head: number) => string
  readonly header: Expect
  readonly query: Expect
}

const invalid: Expect = { _tag: "reset", reason: "invalid" }
const both = (name: string, cursor: Case["cursor"], expect: Expect = invalid): Case => ({ name, cursor, header: expect, query: expect })

const LOG = 50 // the log keeps the last 50 events
const PUBLISHED = 120

const CASES: ReadonlyArray<Case> = [
  both("empty", () => ""),
  both("\" 5\"", () => " 5"),
  both("\"+5\"", () => "+5"),
  both("\"-1\"", () => "-1"),
  both("\"0x10\"", () => "0x10"),
  both("\"1e3\"", () => "1e3"),
  both("\"1.5\"", () => "1.5"),
  both("Arabic-Indic digits", () => "\u0661\u0662\u0663"),
  both("fullwidth digits", () => "\uff11\uff12"),
  both("30 digits", () => "1".repeat(30)),
  both("200 bytes", () => "9".repeat(200)),
  both("epoch + \"+5\"", (e) => `${e}-+5`),
  both("epoch + \" 5\"", (e) => `${e}- 5`),
  both("epoch + \"0x10\"", (e) => `${e}-0x10`),
  both("epoch + \"1e3\"", (e) => `${e}-1e3`),
  both("epoch + \"1.5\"", (e) => `${e}-1.5`),
  both("epoch + \"-1\"", (e) => `${e}--1`),
  both("epoch + leading zero", (e, head) => `${e}-0${head - 3}`),
  both("epoch + Arabic-Indic digits", (e) => `${e}-\u0665`),
  both("epoch + 30 digits", (e) => `${e}-${"1".repeat(30)}`),
  both("epoch + 2^53 + 1", (e) => `${e}-9007199254740993`),
  both("epoch + 200 bytes", (e) => `${e}-${"1".repeat(199 - e.length)}`),
  both("upper-case epoch", (e, head) => `${e.toUpperCase()}-${head - 3}${/[a-z]/.test(e) ? "" : "x"}`),
  both("two cursors", (e, head) => `${e}-${head - 3}, ${e}-${head - 2}`),
  both("other epoch", (e, head) => `${e === "zz" ? "yy" : "zz"}-${head - 3}`, { _tag: "reset", reason: "epoch-mismatch" }),
  both("expired", (e) => `${e}-1`, { _tag: "reset", reason: "expired" }),
  both("expired zero", (e) => `${e}-0`, { _tag: "reset", reason: "expired" }),
  both("future", (e, head) => `${e}-${head + 1}`, { _tag: "reset", reason: "future" }),
  both("far future", (e) => `${e}-9007199254740991`, { _tag: "reset", reason: "future" }),
  // HTTP strips a header value's surrounding whitespace (RFC 9110 §5.5); a query keeps it.
  {
    name: "valid with surrounding spaces",
    cursor: (e, head) => ` ${e}-${head - 3} `,
    header: { _tag: "resume", after: 3 },
    query: invalid
  },
  both("valid, 3 behind", (e, head) => `${e}-${head - 3}`, { _tag: "resume", after: 3 }),
  both("valid, oldest retained", (e, head) => `${e}-${head - LOG}`, { _tag: "resume", after: LOG }),
  both("valid, at the head", (e, head) => `${e}-${head}`, { _tag: "resume", after: 0 })
]

/** What a raw exchange saw. */
interface Answer {
  readonly status: number
  readonly head: string
  readonly body: string
  readonly parsed: ParsedStream
  readonly closed: boolean
}

/** Sends `request` on a fresh socket; `answer()` reads what came back so far. */
const exchange = (port: number, request: Buffer) =>
  Effect.acquireRelease(
    Effect.async<{ socket: Net.Socket; answer: () => Answer }>((resume) => {
      const chunks: Array<Buffer> = []
      let closed = false
      const socket = Net.connect({ port, host: "127.0.0.1" }, () => {
        socket.write(request)
        resume(Effect.succeed({ socket, answer }))
      })
      socket.on("data", (chunk: Buffer) => chunks.push(chunk))
      socket.on("close", () => (closed = true))
      socket.on("error", () => {})
      const answer = (): Answer => {
        const all = Buffer.concat(chunks)
        const split = all.indexOf("\r\n\r\n")
        if (split === -1) return { status: 0, head: "", body: "", parsed: parseSse(""), closed }
        const head = all.subarray(0, split).toString("latin1")
        const body = all.subarray(split + 4).toString("utf8")
        return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, body, parsed: parseSse(body), closed }
      }
    }),
    ({ socket }) => Effect.sync(() => socket.destroy())
  )

/** A raw GET for `/events?topic=t`, with the cursor in the header, the query or both. */
const requestBytes = (headerCursor: string | undefined, queryCursor: string | undefined): Buffer => {
  const query = queryCursor === undefined ? "" : `&lastEventId=${encodeURIComponent(queryCursor)}`
  const parts = [Buffer.from(`GET /events?topic=t${query} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n`)]
  // The header goes out as raw UTF-8 bytes (Node's own client refuses non-ASCII header values).
  if (headerCursor !== undefined) parts.push(Buffer.from(`Last-Event-ID: ${headerCursor}\r\n`, "utf8"))
  parts.push(Buffer.from("\r\n"))
  return Buffer.concat(parts)
}

const LIVE_TIMEOUT = 10_000

/**
 * Runs one request and checks its whole answer against `expect`; returns the milliseconds from the
 * request to its answer (the status for a refusal, else the reset or the last replayed event).
 */
const check = (
  server: Served,
  label: string,
  request: (epoch: string, head: number) => Buffer,
  expect: Expect
) =>
  Effect.scoped(Effect.gen(function*() {
    const { bus, port } = server
    const { head: headSeq, epoch } = (yield* bus.stats).log
    const started = performance.now()
    const { answer } = yield* exchange(port, request(epoch, headSeq))
    yield* waitFor(`the status for ${label}`, () => answer().status !== 0, LIVE_TIMEOUT)
    const status = answer().status
    assert.isBelow(status, 500, `${label}: never a 5xx (${answer().head})`)
    if (expect._tag === "status") {
      assert.strictEqual(status, expect.status, label)
      yield* waitFor(`${label}: the connection to close`, () => answer().closed, LIVE_TIMEOUT)
      return performance.now() - started
    }
    assert.strictEqual(status, 200, `${label}: ${answer().head}`)
    assert.match(answer().head, /\r\ncontent-type: text\/event-stream/i, label)
    const before = expect._tag === "reset" ? 1 : expect.after
    yield* waitFor(
      `${label}: the opening and ${before} event(s)`,
      () => answer().body.includes(": sluice\n\n") && answer().parsed.events.length >= before,
      LIVE_TIMEOUT
    )
    const answeredIn = performance.now() - started
    const live = yield* bus.publish({ topic: "t", data: `live after ${label}` })
    server.data.set(live.id.seq, live.data)
    yield* waitFor(`${label}: the live event`, () => answer().parsed.events.length >= before + 1, LIVE_TIMEOUT)
    const parsed = answer().parsed
    const id = (seq: number) => `${epoch}-${seq}`
    const expected: Array<{ id: string; event: string | undefined; reason: string | undefined }> = expect._tag === "reset"
      ? [{ id: id(headSeq), event: "reset", reason: expect.reason }]
      : Array.from({ length: expect.after }, (_, i) => ({ id: id(headSeq - expect.after + 1 + i), event: undefined, reason: undefined }))
    expected.push({ id: id(live.id.seq), event: undefined, reason: undefined })
    assert.deepStrictEqual(
      parsed.events.map((e) => ({ id: e.id, event: e.event, reason: e.event === "reset" ? JSON.parse(e.data).reason : undefined })),
      expected,
      label
    )
    if (expect._tag === "reset") {
      assert.deepStrictEqual(JSON.parse(parsed.events[0]!.data).head, id(headSeq), `${label}: the reset names the head`)
    } else {
      assert.deepStrictEqual(
        parsed.events.slice(0, -1).map((e) => e.data),
        Array.from({ length: expect.after }, (_, i) => server.data.get(headSeq - expect.after + 1 + i)),
        `${label}: the replayed events are the log's`
      )
    }
    assert.deepStrictEqual(parsed.errors, [], label)
    assert.strictEqual(parsed.retries.length, 1, label)
    return answeredIn
  }))

const summary = (timings: ReadonlyArray<number>) => {
  const sorted = [...timings].sort((a, b) => a - b)
  return `median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} ms, max ${sorted[sorted.length - 1]!.toFixed(1)} ms`
}

/** Each answer's bound: generous, for a loaded 2-core machine; the figures are printed. */
const FAST = 5_000

/** A server and the data of each event it logged, by sequence number. */
interface Served extends TestServer {
  readonly data: Map<number, string>
}

const serve = (options: Parameters<typeof startServer>[0]) =>
  Effect.gen(function*() {
    const server: Served = { ...(yield* startServer(options)), data: new Map() }
    for (let i = 0; i < PUBLISHED; i++) {
      const event = yield* server.bus.publish({ topic: "t", data: `old ${i}` })
      server.data.set(event.id.seq, event.data)
    }
    return server
  })

describe("cursor table", () => {
  it.scopedLive("every cursor in the header and in the query: an exact resume or a reset, never a 5xx, fast", () =>
    Effect.gen(function*() {
      const server = yield* serve({ bus: { log: { maxEvents: LOG } }, route: { heartbeat: "1 hour" } })
      const timings: Array<number> = []
      const outcomes: Record<string, number> = {}
      for (const c of CASES) {
        for (const via of ["header", "query"] as const) {
          const expect = c[via]
          const label = `${c.name} via ${via}`
          const ms = yield* check(
            server,
            label,
            (epoch, head) => {
              const cursor = c.cursor(epoch, head)
              return via === "header" ? requestBytes(cursor, undefined) : requestBytes(undefined, cursor)
            },
            expect
          )
          assert.isBelow(ms, FAST, `${label} answered in ${ms.toFixed(1)} ms`)
          timings.push(ms)
          const key = expect._tag === "reset" ? `reset ${expect.reason}` : expect._tag === "resume" ? "resume" : `${expect.status}`
          outcomes[key] = (outcomes[key] ?? 0) + 1
        }
      }

      // Header and query disagreeing: the header wins, whatever it holds.
      const disagreeing: ReadonlyArray<{ name: string; header: Case["cursor"]; query: Case["cursor"]; expect: Expect }> = [
        { name: "valid header, garbage query", header: (e, h) => `${e}-${h - 2}`, query: () => "0x10", expect: { _tag: "resume", after: 2 } },
        { name: "garbage header, valid query", header: () => "1e3", query: (e, h) => `${e}-${h - 2}`, expect: invalid },
        { name: "empty header, valid query", header: () => "", query: (e, h) => `${e}-${h - 2}`, expect: invalid },
        { name: "expired header, valid query", header: (e) => `${e}-1`, query: (e, h) => `${e}-${h - 2}`, expect: { _tag: "reset", reason: "expired" } },
        { name: "valid header, other valid query", header: (e, h) => `${e}-${h - 4}`, query: (e, h) => `${e}-${h - 1}`, expect: { _tag: "resume", after: 4 } },
        { name: "future header, expired query", header: (e, h) => `${e}-${h + 5}`, query: (e) => `${e}-1`, expect: { _tag: "reset", reason: "future" } }
      ]
      for (const d of disagreeing) {
        const ms = yield* check(server, d.name, (e, h) => requestBytes(d.header(e, h), d.query(e, h)), d.expect)
        assert.isBelow(ms, FAST, d.name)
        timings.push(ms)
      }

      // 20 KiB: past Node's 16 KiB header limit, refused by its parser before any route code runs.
      for (const via of ["header", "query"] as const) {
        const ms = yield* check(
          server,
          `20 KiB via ${via} (default maxHeaderSize)`,
          (e) => {
            const cursor = `${e}-${"7".repeat(20 * 1024)}`
            return via === "header" ? requestBytes(cursor, undefined) : requestBytes(undefined, cursor)
          },
          { _tag: "status", status: 431 }
        )
        timings.push(ms)
      }
      const stats = yield* waitForEffect("every stream released", server.bus.stats, (s) => s.subscribers === 0, 10_000)
      console.log(
        `[cursors] ${timings.length} requests (${CASES.length} cursors × header/query, ${disagreeing.length} disagreeing, ` +
          `2 × 20 KiB): ${JSON.stringify(outcomes)}; answered in ${summary(timings)}; resets counted by the bus ${
            JSON.stringify(stats.resumes)
          }`
      )
    }), 60_000)

  it.scopedLive("a 20 KiB cursor on a server that accepts 64 KiB headers gets its reset", () =>
    Effect.gen(function*() {
      const server = yield* serve({
        bus: { log: { maxEvents: LOG } },
        route: { heartbeat: "1 hour" },
        http: { maxHeaderSize: 64 * 1024 }
      })
      const timings: Array<number> = []
      for (const via of ["header", "query"] as const) {
        for (const cursor of [(e: string) => `${e}-${"7".repeat(20 * 1024)}`, () => "\u0663".repeat(10 * 1024)]) {
          const label = `20 KiB via ${via}`
          const ms = yield* check(
            server,
            label,
            (e) => via === "header" ? requestBytes(cursor(e), undefined) : requestBytes(undefined, cursor(e)),
            invalid
          )
          assert.isBelow(ms, FAST, label)
          timings.push(ms)
        }
      }
      console.log(`[cursors] 20 KiB cursors with maxHeaderSize 64 KiB: ${timings.length} resets, ${summary(timings)}`)
    }), 30_000)
})
