/**
 * Publishing cannot be abused: a body that drips in slowly is cut with `408`, and an optional rate
 * limit per principal or address answers `429` with `Retry-After`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { assertRefused, json, post } from "../utils/http.js"
import { startServer } from "../utils/server.js"
import { connect, until } from "../utils/sse.js"

describe("SseRoute publish limits", () => {
  it.scopedLive("a slow-drip body (1 byte per 100 ms) gets 408 at the body timeout and its connection closes", () =>
    Effect.gen(function*() {
      const { bus, port } = yield* startServer({ route: { publish: true, bodyTimeout: "300 millis" } })
      const socket = yield* Effect.promise(() => connect(port))
      let text = ""
      let closed = false
      socket.setEncoding("utf8")
      socket.on("data", (chunk: string) => (text += chunk))
      socket.on("close", () => (closed = true))
      socket.on("error", () => {})
      const body = JSON.stringify({ topic: "t", data: "drip" })
      socket.write(
        `POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`
      )
      const started = Date.now()
      let sent = 0
      const drip = setInterval(() => {
        if (sent < body.length && !closed) socket.write(body[sent++]!)
      }, 100)
      yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(drip)))
      const answered = yield* Effect.promise(() => until(() => text.includes("\r\n\r\n{"), 5_000))
      const answeredIn = Date.now() - started
      assert.isTrue(answered, "an answer arrived")
      assert.match(text, /^HTTP\/1\.1 408 /)
      assert.match(text, /"error":"request_timeout"/)
      console.log(`[slow drip] 408 after ${answeredIn} ms (bodyTimeout 300 ms), ${sent} of ${body.length} bytes sent`)
      assert.isBelow(sent, body.length)
      assert.isTrue(yield* Effect.promise(() => until(() => closed, 5_000)), "the server closed the connection")
      assert.strictEqual((yield* bus.stats).published, 0)
    }))

  it.scopedLive("past the rate limit a publisher gets 429 with Retry-After; another key is not affected", () =>
    Effect.gen(function*() {
      const { bus, url } = yield* startServer({
        route: {
          publish: true,
          publishRate: { limit: 3, per: "1 minute", key: (request) => request.headers["x-principal"] ?? "anonymous" }
        }
      })
      const event = JSON.stringify({ topic: "t", data: "x" })
      const as = (principal: string) => ({ ...json, "x-principal": principal })
      for (let i = 0; i < 3; i++) assert.strictEqual((yield* post(url, event, as("alice"))).status, 201)
      const refused = yield* post(url, event, as("alice"))
      assertRefused(refused, 429, "too_many_requests")
      const retryAfter = Number(refused.headers["retry-after"])
      assert.isAtLeast(retryAfter, 1)
      assert.isAtMost(retryAfter, 20)
      assert.strictEqual((yield* post(url, event, as("bob"))).status, 201)
      assert.strictEqual((yield* bus.stats).published, 4)
    }))
})
