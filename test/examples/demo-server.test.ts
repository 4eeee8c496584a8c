/**
 * Runs the real demo server (what `npm start` runs, without the npm / tsx CLI wrappers) on a free
 * port and talks to it the way the page does: a `GET /`, `EventSource` subscriptions, a `POST`
 * publish, and a SIGTERM while the streams are open.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { EventSource } from "eventsource"
import { listening, spawnDemo, waitFor } from "../utils/demo.js"

const ID = /^[0-9a-z]+-[0-9]+$/

interface Received {
  readonly type: string
  readonly id: string
  readonly data: string
}

/** An `EventSource` that records every event of the given types (and its opens), closed by the scope. */
const openEventSource = (url: string, types: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const es = new EventSource(url)
      const received: Array<Received> = []
      const listeners = new Set<() => void>()
      let opens = 0
      const notify = () => listeners.forEach((f) => f())
      es.addEventListener("open", () => {
        opens++
        notify()
      })
      for (const type of types) {
        es.addEventListener(type, (event: MessageEvent) => {
          received.push({ type, id: event.lastEventId, data: String(event.data) })
          notify()
        })
      }
      const next = (what: string, predicate: (event: Received) => boolean, millis = 5_000) =>
        waitFor(what, millis, (f) => {
          listeners.add(f)
          return () => listeners.delete(f)
        }, () => received.find(predicate))
      const opened = waitFor(`${url} to open`, 5_000, (f) => {
        listeners.add(f)
        return () => listeners.delete(f)
      }, () => (opens > 0 ? true : undefined))
      return { es, received, next, opened }
    }),
    ({ es }) => Effect.sync(() => es.close())
  )

describe("examples/demo-server", () => {
  it.scopedLive("serves the page, streams published events and drains on SIGTERM", () =>
    Effect.gen(function*() {
      const demo = yield* spawnDemo()
      const url = yield* listening(demo)
      assert.notMatch(url, /:0$/, "the printed address carries the bound port")

      const page = yield* Effect.promise(() => fetch(`${url}/`))
      assert.strictEqual(page.status, 200)
      assert.match(page.headers.get("content-type") ?? "", /^text\/html/)
      const html = yield* Effect.promise(() => page.text())
      assert.include(html, "new EventSource(")
      assert.include(html, `"events":"/events"`)
      assert.notInclude(html, "innerHTML")

      const test = yield* openEventSource(`${url}/events?topic=demo/test`, ["message", "end", "reset"])
      const ticks = yield* openEventSource(`${url}/events?topic=demo/tick`, ["tick", "end"])
      yield* test.opened
      yield* ticks.opened

      const publish = (body: unknown) =>
        Effect.promise(async () => {
          const response = await fetch(`${url}/events`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body)
          })
          return { status: response.status, body: (await response.json()) as { readonly id: string } }
        })
      const other = yield* publish({ topic: "demo/other", data: "not for this subscriber" })
      assert.strictEqual(other.status, 201)
      const posted = yield* publish({ topic: "demo/test", data: "hello\nworld" })
      assert.strictEqual(posted.status, 201)
      assert.match(posted.body.id, ID)

      const message = yield* test.next("the published event", (e) => e.type === "message")
      assert.deepStrictEqual(message, { type: "message", id: posted.body.id, data: "hello\nworld" })
      assert.match(message.id, ID)

      // The ticker publishes on demo/tick every 2 s (the first one at startup).
      const tick = yield* ticks.next("a demo/tick event", (e) => e.type === "tick", 5_000)
      assert.match(tick.id, ID)
      assert.isNumber((JSON.parse(tick.data) as { n: unknown }).n)

      const stats = yield* Effect.promise(() =>
        fetch(`${url}/stats`).then((r) => r.json() as Promise<{ subscribers: number; published: number }>)
      )
      assert.strictEqual(stats.subscribers, 2)
      assert.isAtLeast(stats.published, 2)

      // The ticker switch and the burst route answer JSON, and refuse bad bodies with a JSON 400.
      const postDemo = (path: string, body: string) =>
        Effect.promise(async () => {
          const response = await fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body })
          return { status: response.status, body: (await response.json()) as Record<string, unknown> }
        })
      assert.deepStrictEqual(yield* postDemo("/demo/ticker", `{"on":false}`), { status: 200, body: { on: false } })
      assert.deepStrictEqual(yield* Effect.promise(() => fetch(`${url}/demo/ticker`).then((r) => r.json())), { on: false })
      assert.strictEqual((yield* postDemo("/demo/ticker", `{"on":"yes"}`)).body.error, "invalid_body")
      const burst = yield* postDemo("/demo/burst", `{"topic":"demo/burst","count":3}`)
      assert.strictEqual(burst.status, 201)
      const seq = (id: unknown) => Number(String(id).split("-")[1])
      assert.strictEqual(seq(burst.body.last) - seq(burst.body.first), 2)
      for (const bad of [`{"topic":"demo/burst","count":0}`, `{"topic":"demo/burst","count":501}`, `{"topic":"bad topic","count":1}`, "nope"]) {
        const refused = yield* postDemo("/demo/burst", bad)
        assert.deepStrictEqual([refused.status, refused.body.error], [400, "invalid_body"], bad)
      }

      // SIGTERM with both streams open, then the same signal again as npm / tsx relay a Ctrl-C: the
      // route drains (each stream gets `end` with reason `shutdown`) and runMain exits with 0.
      const started = Date.now()
      demo.child.kill("SIGTERM")
      yield* Effect.sleep("30 millis")
      if (demo.child.exitCode === null) demo.child.kill("SIGTERM")
      const exit = yield* Effect.promise(() => demo.exited).pipe(
        Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("the demo did not exit in 5 s") })
      )
      const elapsed = Date.now() - started
      assert.deepStrictEqual(exit, { code: 0, signal: null }, demo.output())
      assert.isBelow(elapsed, 3_000)

      const end = yield* test.next("the end event", (e) => e.type === "end", 2_000)
      assert.deepStrictEqual(JSON.parse(end.data), { reason: "shutdown" })
      const tickEnd = yield* ticks.next("the end event on the tick stream", (e) => e.type === "end", 2_000)
      assert.deepStrictEqual(JSON.parse(tickEnd.data), { reason: "shutdown" })
      assert.isFalse(test.received.some((e) => e.data === "not for this subscriber"))
      assert.isFalse(test.received.some((e) => e.type === "reset"))
    }), { timeout: 30_000 })
})
