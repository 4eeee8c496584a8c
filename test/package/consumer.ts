// A TypeScript consumer of the packed package, type-checked with TypeScript's defaults for a Node 20
// target (ES2022 with its default lib, strict, no skipLibCheck): the root entry, a deep import, the
// models and the layers. (It leaves out @effect/platform-node, whose own declarations need @types/ws
// without skipLibCheck.)
import { HttpServer } from "@effect/platform"
import { type ConfigError, Effect, Layer, Schedule } from "effect"
import { Event, EventBus, SseRoute } from "sluice"
import * as EventLog from "sluice/EventLog"

const options: SseRoute.Options = { heartbeat: "15 seconds", publish: true, maxEvents: 100 }

const Ticker = Layer.scopedDiscard(Effect.gen(function*() {
  const bus = yield* EventBus.EventBus
  const tick = Effect.suspend(() => bus.publish({ topic: "clock", type: "tick", data: new Date().toISOString() }))
  yield* tick.pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.forkScoped)
}))

const firstIds = Effect.gen(function*() {
  const bus = yield* EventBus.EventBus
  const published: Event.Event = yield* bus.publish({ topic: "clock", data: "now" })
  const id: string = Event.formatId(published.id)
  return id
})

export const main: Effect.Effect<string, never, EventBus.EventBus> = firstIds.pipe(Effect.orDie)
export const log: typeof EventLog.EventLog = EventLog.EventLog

/**
 * The app, for any `HttpServer` layer (e.g. `NodeHttpServer.layer(createServer, { port: 8080 })`); an
 * option out of its bounds fails it with a `ConfigError`.
 */
export const App: Layer.Layer<never, ConfigError.ConfigError, HttpServer.HttpServer> = HttpServer.serve(SseRoute.router).pipe(
  Layer.merge(Ticker),
  Layer.provide(SseRoute.layer(options)),
  Layer.provide(EventBus.layerMemory())
)
