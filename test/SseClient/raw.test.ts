/**
 * The client against a tiny hand-written `node:http` SSE server: terminal statuses become typed
 * errors, retryable trouble (5xx, refused connections, garbage, broken frames) is retried, resumes
 * carry `Last-Event-ID`, and interrupting the consumer closes the socket. Real sockets, real time
 * with short timings (the timing rules themselves are tested on the TestClock in backoff.test.ts).
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as Http from "node:http"
import * as Net from "node:net"
import * as SseClient from "../../src/SseClient.js"
import { sseHead, startRawServer } from "../utils/rawServer.js"
import { waitFor } from "../utils/sse.js"

const fast = { retry: 5, backoff: 5, maxBackoff: 20 } as const

const collect = <A, E>(stream: Stream.Stream<A, E, any>, n: number) =>
  stream.pipe(Stream.take(n), Stream.runCollect, Effect.map(Chunk.toReadonlyArray), Effect.provide(FetchHttpClient.layer))

const failureOf = (stream: Stream.Stream<unknown, SseClient.SseClientError, any>) =>
  stream.pipe(Stream.runDrain, Effect.flip, Effect.provide(FetchHttpClient.layer))

const messages = (items: ReadonlyArray<SseClient.Item | SseClient.Status>) =>
  items.filter((i): i is SseClient.Message => i._tag === "Message").map((m) => `${m.id}:${m.data}`)

describe("SseClient against a raw node:http server", () => {
  it.scopedLive("resumes after a clean end with Last-Event-ID and reports the end", () =>
    Effect.gen(function*() {
      const server = yield* startRawServer((r) => {
        sseHead(r.res)
        const n = r.index * 2
        r.res.end(`retry: 5\nid: e-${n + 1}\ndata: ${n + 1}\n\nid: e-${n + 2}\ndata: ${n + 2}\n\n`)
      })
      const items = yield* collect(SseClient.streamWithStatus(server.url), 9)
      assert.deepStrictEqual(items.map((i) => i._tag), [
        "Connected",
        "Message",
        "Message",
        "Disconnected",
        "Connected",
        "Message",
        "Message",
        "Disconnected",
        "Connected"
      ])
      assert.deepStrictEqual(messages(items), ["e-1:1", "e-2:2", "e-3:3", "e-4:4"])
      const disconnected = items[3] as SseClient.Disconnected
      assert.deepStrictEqual(disconnected, {
        _tag: "Disconnected",
        cause: { _tag: "End", reason: undefined },
        delay: 5,
        failures: 0
      })
      assert.deepStrictEqual(server.requests.slice(0, 3).map((r) => r.lastEventId), [undefined, "e-2", "e-4"])
      assert.strictEqual(server.requests[0]!.req.headers.accept, "text/event-stream")
    }))

  it.scopedLive("sends topics, the first lastEventId and the headers (an effect runs before each connection)", () =>
    Effect.gen(function*() {
      const server = yield* startRawServer((r) => {
        sseHead(r.res)
        r.res.end(`retry: 1\nid: k-${r.index + 1}\ndata: x\n\n`)
      })
      let token = 0
      const headers = Effect.sync(() => ({ authorization: `Bearer t${++token}` }))
      yield* collect(SseClient.stream(server.url + "/events", { topics: ["a/b", "c/*"], lastEventId: "k-0", headers }), 2)
      assert.strictEqual(server.requests[0]!.req.url, "/events?topic=a%2Fb&topic=c%2F*")
      assert.deepStrictEqual(server.requests.slice(0, 2).map((r) => r.lastEventId), ["k-0", "k-1"])
      assert.deepStrictEqual(server.requests.slice(0, 2).map((r) => r.req.headers.authorization), ["Bearer t1", "Bearer t2"])
    }))

  it.scopedLive("sluice's reset and end frames become a Reset value and the Disconnected cause", () =>
    Effect.gen(function*() {
      const server = yield* startRawServer((r) => {
        sseHead(r.res)
        r.res.end(
          r.index === 0
            ? "retry: 1\n: sluice\n\nid: e2-7\nevent: reset\ndata: {\"reason\":\"epoch-mismatch\",\"head\":\"e2-7\",\"message\":\"m\"}\n\n" +
              "id: e2-8\ndata: after\n\nevent: end\ndata: {\"reason\":\"overflow\"}\n\n"
            : "id: e2-9\ndata: next\n\n"
        )
      })
      const items = yield* collect(SseClient.streamWithStatus(server.url, { lastEventId: "e1-40" }), 6)
      assert.deepStrictEqual(items.slice(1, 4), [
        { _tag: "Reset", reason: "epoch-mismatch", head: "e2-7", message: "m" },
        { _tag: "Message", id: "e2-8", type: "message", data: "after" },
        { _tag: "Disconnected", cause: { _tag: "End", reason: "overflow" }, delay: 1, failures: 0 }
      ])
      assert.deepStrictEqual(items[5], { _tag: "Message", id: "e2-9", type: "message", data: "next" })
      assert.strictEqual(server.requests[1]!.lastEventId, "e2-8")
    }))

  it.scopedLive("reset and end frames that are not sluice's are ordinary messages", () =>
    Effect.gen(function*() {
      const server = yield* startRawServer((r) => {
        sseHead(r.res)
        r.res.write("event: reset\ndata: please\n\nevent: end\ndata: {\"no\":1}\n\n")
      })
      const items = yield* collect(SseClient.stream(server.url), 2)
      assert.deepStrictEqual(items, [
        { _tag: "Message", id: "", type: "reset", data: "please" },
        { _tag: "Message", id: "", type: "end", data: "{\"no\":1}" }
      ])
    }))

  it.scopedLive("drops an event whose id is not after the last one in the same epoch; another epoch is taken", () =>
    Effect.gen(function*() {
      const server = yield* startRawServer((r) => {
        sseHead(r.res)
        // A server that replays too much: the client sees each of e-1..e-4 once.
        r.res.end(
          r.index === 0
            ? "retry: 1\nid: e-1\ndata: 1\n\nid: e-2\ndata: 2\n\n"
            : "id: e-1\ndata: 1\n\nid: e-2\ndata: 2\n\nid: e-3\ndata: 3\n\nid: e-2\ndata: 2\n\nid: e-4\ndata: 4\n\n" +
              "id: f-1\ndata: new epoch\n\nid: x\ndata: not ours\n\ndata: no id\n\n"
        )
      })
      const items = yield* collect(SseClient.stream(server.url), 7)
      assert.deepStrictEqual(messages(items), ["e-1:1", "e-2:2", "e-3:3", "e-4:4", "f-1:new epoch", "x:not ours", "x:no id"])
    }))

  it.scopedLive("a non-ASCII id is sent back as its UTF-8 bytes (fetch and Node clients)", () =>
    Effect.gen(function*() {
      const server = yield* startRawServer((r) => {
        sseHead(r.res)
        r.res.end("retry: 1\nid: café-€-😀\ndata: x\n\n")
      })
      for (const layer of [FetchHttpClient.layer, NodeHttpClient.layer]) {
        const before = server.requests.length
        yield* SseClient.stream(server.url).pipe(Stream.take(2), Stream.runDrain, Effect.provide(layer))
        const header = server.requests[before + 1]!.req.rawHeaders
        const value = header[header.findIndex((h) => h.toLowerCase() === "last-event-id") + 1]!
        assert.strictEqual(Buffer.from(value, "latin1").toString("utf8"), "café-€-😀")
      }
    }))

  describe("terminal answers are typed errors and end the stream", () => {
    const cases: ReadonlyArray<[string, (res: Http.ServerResponse) => void, SseClient.SseClientErrorReason, number]> = [
      ["401", (res) => res.writeHead(401).end("{}"), "Unauthorized", 401],
      ["403", (res) => res.writeHead(403).end(), "Forbidden", 403],
      ["404", (res) => res.writeHead(404).end(), "NotFound", 404],
      ["204", (res) => res.writeHead(204).end(), "NoContent", 204],
      ["400", (res) => res.writeHead(400, { "content-type": "application/json" }).end("{}"), "Status", 400],
      ["200 text/plain", (res) => res.writeHead(200, { "content-type": "text/plain" }).end("data: x\n\n"), "ContentType", 200],
      ["200 without a content type", (res) => res.writeHead(200).end("data: x\n\n"), "ContentType", 200]
    ]
    for (const [name, answer, reason, status] of cases) {
      it.scopedLive(name, () =>
        Effect.gen(function*() {
          const server = yield* startRawServer((r) => answer(r.res))
          const error = yield* failureOf(SseClient.stream(server.url, fast))
          assert.strictEqual(error._tag, "SseClientError")
          assert.strictEqual(error.reason, reason)
          assert.strictEqual(error.status, status)
          assert.strictEqual(server.requests.length, 1, "no retry")
          yield* waitFor("the socket to close", () => server.requests[0]!.closed)
        }))
    }

    it.scopedLive("text/event-stream with parameters and in another case is accepted", () =>
      Effect.gen(function*() {
        const server = yield* startRawServer((r) => {
          sseHead(r.res, "Text/Event-Stream; charset=utf-8")
          r.res.write("data: ok\n\n")
        })
        const items = yield* collect(SseClient.stream(server.url), 1)
        assert.deepStrictEqual(messages(items), [":ok"])
      }))

    it.scopedLive("an option out of range, before any request", () =>
      Effect.gen(function*() {
        const server = yield* startRawServer((r) => r.res.writeHead(500).end())
        const cases: ReadonlyArray<[SseClient.Options, string]> = [
          [{ maxEventSize: 0 }, "maxEventSize"],
          [{ maxEventSize: 1.5 }, "maxEventSize"],
          [{ retry: "soon" as any }, "retry"],
          [{ heartbeat: -1 }, "heartbeat"],
          [{ idleTimeout: Number.NaN }, "idleTimeout"],
          [{ maxBackoff: "3 parsecs" as any }, "maxBackoff"]
        ]
        for (const [options, name] of cases) {
          const error = yield* failureOf(SseClient.stream(server.url, options))
          assert.strictEqual(error.reason, "InvalidOption", name)
          assert.isTrue(error.message.startsWith(name), error.message)
        }
        assert.strictEqual(server.requests.length, 0)
      }))

    it.effect("an unparsable URL", () =>
      Effect.gen(function*() {
        const error = yield* failureOf(SseClient.stream("http://[::1"))
        assert.strictEqual(error.reason, "InvalidUrl")
      }))
  })

  it.scopedLive("503, 500, 429 and a refused connection are retried, never fatal", () =>
    Effect.gen(function*() {
      const server = yield* startRawServer((r) => {
        if (r.index === 0) return r.res.writeHead(503, { "retry-after": "0" }).end()
        if (r.index === 1) return r.res.writeHead(500).end("boom")
        if (r.index === 2) return r.res.writeHead(429).end()
        if (r.index === 3) return r.req.socket.destroy()
        sseHead(r.res)
        r.res.write("id: e-1\ndata: finally\n\n")
      })
      const items = yield* collect(SseClient.streamWithStatus(server.url, fast), 6)
      assert.deepStrictEqual(items.map((i) => i._tag !== "Disconnected" ? i._tag : i.cause._tag === "ServerError" ? i.cause : i.cause._tag), [
        { _tag: "ServerError", status: 503, retryAfter: 0 },
        { _tag: "ServerError", status: 500, retryAfter: undefined },
        { _tag: "ServerError", status: 429, retryAfter: undefined },
        "NetworkError",
        "Connected",
        "Message"
      ])
      assert.deepStrictEqual(items.slice(0, 4).map((i) => (i as SseClient.Disconnected).failures), [1, 2, 3, 4])

      // Refused: nothing listens on the port at first; the stream keeps retrying until a server does.
      const port = yield* freePort
      const got: Array<SseClient.Item | SseClient.Status> = []
      const fiber = yield* SseClient.streamWithStatus(`http://127.0.0.1:${port}`, fast).pipe(
        Stream.runForEach((item) => Effect.sync(() => got.push(item))),
        Effect.provide(FetchHttpClient.layer),
        Effect.fork
      )
      const refused = () => got.filter((i) => i._tag === "Disconnected" && i.cause._tag === "NetworkError").length
      yield* waitFor("two refused attempts", () => refused() >= 2)
      const late = Http.createServer((_req, res) => {
        sseHead(res)
        res.write("data: up\n\n")
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void late.listen(port, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.sync(() => (late.closeAllConnections(), late.close()))
      )
      yield* waitFor("the message", () => got.some((i) => i._tag === "Message"))
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(got.slice(-2).map((i) => i._tag === "Message" ? i.data : i._tag), ["Connected", "up"])
      assert.isTrue(got.slice(0, -2).every((i) => i._tag === "Disconnected" && i.cause._tag === "NetworkError"))
    }))

  it.scopedLive("garbage, unknown fields and frames cut off by an end or a reset are survived; cut-off events are re-sent", () =>
    Effect.gen(function*() {
      const frames = ["id: e-1\ndata: one\n\n", "id: e-2\ndata: two\n\n", "id: e-3\ndata: three\n\n"]
      const after = (id: string | undefined) => id === undefined ? 0 : Number(id.slice(2))
      const server = yield* startRawServer((r) => {
        sseHead(r.res)
        const from = after(r.lastEventId)
        if (r.index === 0) {
          // Garbage and unknown fields, one event, then a clean end in the middle of the next frame.
          r.res.end("retry: 1\n\u0000\u0001garbage line\nnot a field\nfoo: bar\n:comment\n" + frames[0] + "id: e-2\ndata: cut")
        } else if (r.index === 1) {
          // The rest up to e-2, then a reset socket in the middle of e-3.
          r.res.write(frames.slice(from, 2).join("") + "id: e-3\nda", () => setTimeout(() => r.req.socket.resetAndDestroy(), 20))
        } else {
          r.res.write(frames.slice(from).join(""))
        }
      })
      const items = yield* SseClient.streamWithStatus(server.url, fast).pipe(
        Stream.takeUntil((i) => i._tag === "Message" && i.data === "three"),
        Stream.runCollect,
        Effect.map(Chunk.toReadonlyArray),
        Effect.provide(FetchHttpClient.layer)
      )
      assert.deepStrictEqual(messages(items), ["e-1:one", "e-2:two", "e-3:three"])
      assert.strictEqual(server.requests[1]!.lastEventId, "e-1", "the cut-off e-2 was not recorded")
      const causes = items.filter((i): i is SseClient.Disconnected => i._tag === "Disconnected").map((d) => d.cause._tag)
      assert.deepStrictEqual(causes, ["End", causes[1]!])
      assert.include(["End", "NetworkError"], causes[1])
    }))

  it.scopedLive("an endless data line fails with EventTooLarge after about maxEventSize, memory bounded", () =>
    Effect.gen(function*() {
      let written = 0
      const server = yield* startRawServer((r) => {
        sseHead(r.res)
        r.res.write("id: e-1\ndata: fine\n\ndata: ")
        const piece = "x".repeat(16 * 1024)
        const pump = () => {
          while (!r.closed && written < 64 * 1024 * 1024) {
            written += piece.length
            if (!r.res.write(piece)) return void r.res.once("drain", pump)
          }
        }
        pump()
      })
      const seen: Array<string> = []
      const error = yield* SseClient.stream(server.url, { ...fast, maxEventSize: 256 * 1024 }).pipe(
        Stream.runForEach((item) => Effect.sync(() => seen.push(item._tag === "Message" ? item.data : item._tag))),
        Effect.flip,
        Effect.provide(FetchHttpClient.layer)
      )
      assert.strictEqual(error.reason, "EventTooLarge")
      assert.deepStrictEqual(seen, ["fine"], "what came before the oversized event was delivered")
      assert.isBelow(written, 8 * 1024 * 1024, "the client stopped reading soon after the limit")
      assert.strictEqual(server.requests.length, 1, "no retry")
      yield* waitFor("the socket to close", () => server.requests[0]!.closed)
    }))

  it.scopedLive("an endless line that is no field is skipped without buffering; the stream goes on", () =>
    Effect.gen(function*() {
      const server = yield* startRawServer((r) => {
        sseHead(r.res)
        r.res.write("garbage")
        const piece = "y".repeat(64 * 1024)
        let left = 256 // 16 MiB of one line
        const pump = () => {
          while (left > 0) {
            left--
            if (!r.res.write(piece)) return void r.res.once("drain", pump)
          }
          r.res.write("\nid: e-1\ndata: after\n\n")
        }
        pump()
      })
      const items = yield* collect(SseClient.stream(server.url, { maxEventSize: 64 * 1024 }), 1)
      assert.deepStrictEqual(messages(items), ["e-1:after"])
    }))

  it.scopedLive("interrupting the consumer during its wait or its idle watch ends it at once and leaves no socket", () =>
    Effect.gen(function*() {
      // One server ends at once with a one-minute retry (the client then waits); the other sends a
      // message and stays open (the client then watches for 45 s of silence).
      const ending = yield* startRawServer((r) => {
        r.res.writeHead(200, { "content-type": "text/event-stream", connection: "close" })
        r.res.end("retry: 60000\n\n")
      })
      const open = yield* startRawServer((r) => {
        sseHead(r.res)
        r.res.write("data: open\n\n")
      })
      for (const [name, layer] of [["fetch", FetchHttpClient.layer], ["node", NodeHttpClient.layer]] as const) {
        for (const [phase, server, until] of [["wait", ending, "Disconnected"], ["idle watch", open, "Message"]] as const) {
          const seen: Array<string> = []
          const fiber = yield* SseClient.streamWithStatus(server.url).pipe(
            Stream.runForEach((item) => Effect.sync(() => seen.push(item._tag))),
            Effect.provide(layer),
            Effect.fork
          )
          yield* waitFor(`${name} ${phase}: ${until}`, () => seen.includes(until))
          const started = Date.now()
          const exit = yield* Fiber.interrupt(fiber)
          assert.isTrue(Exit.isInterrupted(exit))
          assert.isBelow(Date.now() - started, 5_000, `${name} ${phase}: the interruption did not wait for the timer`)
          yield* waitFor(`${name} ${phase}: no socket left`, () => server.sockets.size === 0)
          assert.strictEqual(seen.at(-1), until, "nothing ran after the interruption")
        }
      }
    }))

  it.scopedLive("interrupting the consumer closes the connection", () =>
    Effect.gen(function*() {
      const server = yield* startRawServer((r) => {
        sseHead(r.res)
        r.res.write("data: hello\n\n")
      })
      for (const [name, layer] of [["fetch", FetchHttpClient.layer], ["node", NodeHttpClient.layer]] as const) {
        const before = server.requests.length
        const got: Array<string> = []
        const fiber = yield* SseClient.stream(server.url).pipe(
          Stream.runForEach((m) => Effect.sync(() => got.push(m._tag))),
          Effect.provide(layer),
          Effect.fork
        )
        yield* waitFor(`${name}: the first message`, () => got.length === 1)
        const exit = yield* Fiber.interrupt(fiber)
        assert.isTrue(Exit.isInterrupted(exit))
        yield* waitFor(`${name}: the server to see the socket close`, () => server.requests[before]!.closed)
        assert.strictEqual(server.requests.length, before + 1)
      }
      yield* waitFor("no socket left open", () => server.sockets.size === 0)
    }))
})

/** A loopback port nothing listens on (bound, then released). */
const freePort = Effect.async<number>((resume) => {
  const probe = Net.createServer()
  probe.listen(0, "127.0.0.1", () => {
    const port = (probe.address() as Net.AddressInfo).port
    probe.close(() => resume(Effect.succeed(port)))
  })
})

