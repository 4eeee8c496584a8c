/**
 * The demo server (`npm start`): a bus behind the SSE route, with publishing enabled, a JSON stats
 * route, Prometheus metrics and a small page at `/`. The bus runs on the memory log, or on the Redis
 * Streams log when `SLUICE_REDIS_URL` is set, so several demo servers on one Redis act as one.
 *
 *   GET  /         the demo page (native EventSource)
 *   GET  /events   SSE (`?topic=…`, `Last-Event-ID` / `?lastEventId=…`)
 *   POST /events   publish JSON `{ topic, type?, data }` → `201 { id }`
 *   GET  /stats    the bus's counters as JSON
 *   GET  /metrics  Prometheus text
 *
 * Environment: `PORT` (default 8080, `0` picks a free port), `HOST` (default 127.0.0.1),
 * `SLUICE_REDIS_URL` (e.g. `redis://127.0.0.1:6379`; unset: the memory log) with `SLUICE_REDIS_PREFIX`
 * (default `sluice`) and `SLUICE_REDIS_MAX_EVENTS` (default 10,000),
 * `DEMO_TICK=0` turns off the `demo/tick` event published every 2 s, and the `SLUICE_SSE_*`,
 * `SLUICE_BUS_*` and `SLUICE_LOG_*` variables (`SseRoute.fromEnv`, `EventBus.fromEnv`,
 * `EventLog.memoryFromEnv`) override the route's, the bus's and the memory log's options. It prints the address it is bound to
 * and exits cleanly on SIGINT / SIGTERM: the route drains its streams (each gets `event: end` with
 * reason `shutdown`) before the HTTP server closes.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Http from "node:http"
import * as os from "node:os"
import * as EventBus from "../src/EventBus.js"
import * as EventLog from "../src/EventLog.js"
import * as SseRoute from "../src/SseRoute.js"
import { renderPage } from "./demo-page.js"

/** Listens on `HOST:PORT`; `PORT=0` binds a free port (the printed address carries the real one). */
const ServerLive = NodeHttpServer.layerConfig(() => Http.createServer(), {
  port: Config.integer("PORT").pipe(
    Config.validate({ message: "PORT must be an integer from 0 to 65535", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(8080)
  ),
  host: Config.string("HOST").pipe(Config.withDefault("127.0.0.1"))
})

/** `GET /`: the page, pointed at the route's configured paths. */
const PageLive = HttpRouter.Default.use((router) =>
  Effect.gen(function*() {
    const { options } = yield* SseRoute.SseRoute
    const html = renderPage({ events: options.path, stats: options.statsPath })
    yield* router.get(
      "/",
      Effect.succeed(HttpServerResponse.text(html, {
        contentType: "text/html; charset=utf-8",
        headers: { "cache-control": "no-store" }
      }))
    )
  })
)

/**
 * The log: Redis Streams when `SLUICE_REDIS_URL` is set, memory otherwise. The Redis module is
 * imported only then, so the memory demo never loads a Redis client.
 */
const LogLive = Layer.unwrapEffect(Effect.gen(function*() {
  const url = yield* Config.option(Config.string("SLUICE_REDIS_URL"))
  if (Option.isNone(url)) return EventLog.layerMemoryConfig(EventLog.memoryFromEnv())
  const RedisLog = yield* Effect.promise(() => import("../src/EventLog/Redis.js"))
  return RedisLog.layerConfig({
    url: Config.string("SLUICE_REDIS_URL"),
    prefix: Config.withDefault(Config.string("SLUICE_REDIS_PREFIX"), undefined),
    maxEvents: Config.withDefault(Config.integer("SLUICE_REDIS_MAX_EVENTS"), undefined)
  })
}))

/** The routes (events, publish, stats, metrics at the configured paths, and the page) served over HTTP. */
const HttpLive = HttpRouter.Default.serve().pipe(
  Layer.provide(Layer.mergeAll(SseRoute.layerRouter(HttpRouter.Default), PageLive))
)

/** Publishes `{ n, time }` on `demo/tick` (type `tick`) every 2 s, so a fresh page shows movement. */
const TickerLive = Layer.scopedDiscard(Effect.gen(function*() {
  const enabled = yield* Config.boolean("DEMO_TICK").pipe(Config.withDefault(true))
  if (!enabled) return
  const bus = yield* EventBus.EventBus
  let n = 0
  const tick = Effect.suspend(() => {
    n += 1
    return bus.publish({ topic: "demo/tick", type: "tick", data: JSON.stringify({ n, time: Date.now() }) })
  }).pipe(Effect.catchAll((error) => Effect.logWarning("demo tick not published", error)))
  yield* Effect.forkScoped(Effect.repeat(tick, Schedule.spaced("2 seconds")))
}))

const formatUrl = (address: HttpServer.Address): string =>
  address._tag === "UnixAddress"
    ? `unix://${address.path}`
    : `http://${address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname}:${address.port}`

/**
 * The whole program. The server layer is built first and so released last: on shutdown the ticker
 * stops, the route drains its streams, the bus shuts down, and only then does the server close.
 */
const DemoLive = Layer.mergeAll(HttpLive, TickerLive).pipe(
  Layer.provide(SseRoute.layerConfig(SseRoute.fromEnv({ publish: true }))),
  Layer.provideMerge(EventBus.layerConfig(EventBus.fromEnv()).pipe(Layer.provideMerge(LogLive))),
  Layer.provideMerge(ServerLive),
  Layer.tap((context) =>
    HttpServer.addressWith((address) =>
      Effect.sync(() => console.log(`sluice demo listening on ${formatUrl(address)}`))
    ).pipe(Effect.provide(context))
  )
)

/**
 * Ctrl-C under `npm start` reaches this process more than once: the terminal signals the whole
 * process group and the tsx CLI relays the signal again. `runMain` handles the first one (it
 * interrupts the program, which drains the streams) and removes its listeners; with no listener
 * left, the repeat would kill the process mid-drain (tsx's preflight then exits with 128 + signal,
 * cutting every stream without its `end`). So this keeps a listener: repeats within a few seconds of
 * the first signal are ignored (the drain is bounded by the route's drain timeout), a later one
 * exits at once.
 */
const guardRepeatedSignals = (graceMillis: number): void => {
  let first: number | undefined
  const onSignal = (signal: NodeJS.Signals) => {
    const now = Date.now()
    if (first === undefined) first = now
    else if (now - first > graceMillis) process.exit(128 + (os.constants.signals[signal] ?? 0))
  }
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)
}

guardRepeatedSignals(3_000)
NodeRuntime.runMain(Layer.launch(DemoLive))
