import * as HttpApp from "@effect/platform/HttpApp"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createParser, type EventSourceMessage } from "eventsource-parser"
import * as EventBus from "../src/EventBus.js"
import * as SseRoute from "../src/SseRoute.js"

// The portable path: no Node response to write to (a web handler), so the route serves each
// subscription as a body stream. Same wire contract, same lifetimes.
describe("SseRoute as a web handler (portable body stream)", () => {
  it.scopedLive("streams, resumes with a reset for a foreign cursor, and unsubscribes when the reader cancels", () =>
    Effect.gen(function*() {
      const { dispose, handler } = HttpApp.toWebHandlerLayer(
        SseRoute.router,
        SseRoute.layer({ publish: true, heartbeat: "100 millis" }).pipe(Layer.provideMerge(EventBus.layerMemory()))
      )
      yield* Effect.addFinalizer(() => Effect.promise(dispose))
      const publish = (data: string) =>
        Effect.promise(() =>
          handler(
            new Request("http://sluice.test/events", {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ topic: "web/a", data })
            })
          )
        )
      const stats = Effect.promise(() =>
        handler(new Request("http://sluice.test/stats")).then((r) => r.json() as Promise<EventBus.Stats>)
      )

      const response = yield* Effect.promise(() =>
        handler(new Request("http://sluice.test/events?topic=web/*", { headers: { "last-event-id": "zzz-5" } }))
      )
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.headers.get("content-type"), "text/event-stream")
      assert.strictEqual(response.headers.get("cache-control"), "no-cache, no-transform")

      const received: Array<EventSourceMessage> = []
      let comments = 0
      const parser = createParser({ onEvent: (e) => received.push(e), onComment: () => comments++ })
      const reader = response.body!.getReader()
      const decoder = new TextDecoder()
      const readUntil = (done: () => boolean) =>
        Effect.promise(async () => {
          const deadline = Date.now() + 5_000
          while (!done() && Date.now() < deadline) {
            const chunk = await reader.read()
            if (chunk.done) break
            parser.feed(decoder.decode(chunk.value, { stream: true }))
          }
        })

      yield* readUntil(() => received.length >= 1)
      assert.strictEqual(received[0]!.event, "reset")
      assert.strictEqual(JSON.parse(received[0]!.data).reason, "epoch-mismatch")

      const created = yield* publish("one\r\ntwo")
      assert.strictEqual(created.status, 201)
      const { id } = (yield* Effect.promise(() => created.json())) as { id: string }
      yield* readUntil(() => received.length >= 2)
      assert.deepStrictEqual({ id: received[1]!.id, data: received[1]!.data }, { id, data: "one\ntwo" })

      yield* readUntil(() => comments >= 2) // heartbeats on an idle stream
      assert.isAtLeast(comments, 2)
      assert.strictEqual((yield* stats).subscribers, 1)

      yield* Effect.promise(() => reader.cancel())
      let subscribers = -1
      for (let i = 0; i < 100 && subscribers !== 0; i++) {
        yield* Effect.sleep("20 millis")
        subscribers = (yield* stats).subscribers
      }
      assert.strictEqual(subscribers, 0)
    }))
})
