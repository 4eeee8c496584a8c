// A plain-Node consumer of the packed package (no tsx, no TypeScript): serves the route on a free
// loopback port, reads one stream with fetch while two events are published, prints what it read.
import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { createServer } from "node:http"
import { SseRoute } from "sluice"
import * as EventBus from "sluice/EventBus"

const readUntil = (body, done) => Effect.promise(async () => {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let text = ""
  while (!done(text)) {
    const { done: ended, value } = await reader.read()
    if (ended) break
    text += decoder.decode(value, { stream: true })
  }
  await reader.cancel()
  return text
})

const program = Effect.gen(function*() {
  const server = yield* HttpServer.HttpServer
  const bus = yield* EventBus.EventBus
  const url = `http://127.0.0.1:${server.address.port}`
  const response = yield* Effect.promise(() => fetch(`${url}/events?topic=clock`))
  yield* bus.publish({ topic: "clock", type: "tick", data: "one" })
  yield* bus.publish({ topic: "clock", type: "tick", data: "two" })
  const text = yield* readUntil(response.body, (t) => t.includes("data: two\n\n"))
  return { status: response.status, contentType: response.headers.get("content-type"), text }
})

const App = HttpServer.serve(SseRoute.router).pipe(Layer.provide(SseRoute.layer()))
const Env = Layer.mergeAll(
  EventBus.layerMemory(),
  NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })
)

program.pipe(
  Effect.timeout("20 seconds"),
  Effect.provide(App.pipe(Layer.provideMerge(Env))),
  Effect.runPromise
).then(
  (result) => console.log(JSON.stringify(result)),
  (error) => {
    console.error(String(error))
    process.exitCode = 1
  }
)
