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
 *   GET  /demo/ticker   `{ on }`: whether the ticker publishes
 *   POST /demo/ticker   `{ on: boolean }` turns it on or off → `{ on }`
 *   POST /demo/burst    `{ topic, count }` publishes `count` (1 to 500) events in one batch → `201 { first, last }`:
 *                       a burst larger than a connection's buffer ends its stream as `overflow`
 *
 * Environment: `PORT` (default 8080, `0` picks a free port), `HOST` (default 127.0.0.1),
 * `SLUICE_REDIS_URL` (e.g. `redis://127.0.0.1:6379`; unset: the memory log) with `SLUICE_REDIS_PREFIX`
 * (default `sluice`) and `SLUICE_REDIS_MAX_EVENTS` (default 10,000),
 * `DEMO_TICK=0` starts with the `demo/tick` event (every 2 s) turned off, and the `SLUICE_SSE_*`,
 * `SLUICE_BUS_*` and `SLUICE_LOG_*` variables (`SseRoute.fromEnv`, `EventBus.fromEnv`,
 * `EventLog.memoryFromEnv`) override the route's, the bus's and the memory log's options. It prints the address it is bound to
 * and exits cleanly on SIGINT / SIGTERM: the route drains its streams (each gets `event: end` with
 * reason `shutdown`) before the HTTP server closes.
 */
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Http from "node:http"
import * as os from "node:os"
import { formatId } from "../src/Event.js"
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

/** Whether the ticker publishes: on unless `DEMO_TICK=0`, switched at `POST /demo/ticker`. */
class TickerSwitch extends Context.Tag("demo/TickerSwitch")<TickerSwitch, Ref.Ref<boolean>>() {}

const TickerSwitchLive = Layer.effect(
  TickerSwitch,
  Effect.flatMap(Config.boolean("DEMO_TICK").pipe(Config.withDefault(true)), Ref.make)
)

const TICKER_PATH = "/demo/ticker"
const BURST_PATH = "/demo/burst"

const tickerState = (on: boolean) => HttpServerResponse.unsafeJson({ on }, { headers: { "cache-control": "no-store" } })

const invalid = (message: string) =>
  Effect.succeed(HttpServerResponse.unsafeJson({ error: "invalid_body", message }, { status: 400 }))

/** `POST /demo/ticker` with `{ on: boolean }`; anything else is a JSON `400`. */
const switchTicker = (ref: Ref.Ref<boolean>) =>
  HttpServerRequest.schemaBodyJson(Schema.Struct({ on: Schema.Boolean })).pipe(
    Effect.flatMap(({ on }) => Effect.as(Ref.set(ref, on), tickerState(on))),
    Effect.catchAll(() => invalid("expected JSON { \"on\": true | false }"))
  )

const BurstBody = Schema.Struct({ topic: Schema.String, count: Schema.Int.pipe(Schema.between(1, 500)) })

/** `POST /demo/burst` with `{ topic, count }`: `count` events in one `publishAll`. */
const burst = (bus: EventBus.EventBus["Type"]) =>
  HttpServerRequest.schemaBodyJson(BurstBody).pipe(
    Effect.flatMap(({ count, topic }) =>
      bus.publishAll(Array.from({ length: count }, (_, i) => ({ topic, data: `burst ${i + 1}/${count}` })))
    ),
    Effect.map((events) =>
      HttpServerResponse.unsafeJson({ first: formatId(events[0]!.id), last: formatId(events.at(-1)!.id) }, { status: 201 })
    ),
    Effect.catchAll((error) =>
      invalid(error._tag === "PublishError" ? error.message : "expected JSON { \"topic\": string, \"count\": 1 to 500 }")
    )
  )

/** `GET /`: the page, pointed at the route's configured paths; the ticker switch and the burst. */
const PageLive = HttpRouter.Default.use((router) =>
  Effect.gen(function*() {
    const { options } = yield* SseRoute.SseRoute
    const ticker = yield* TickerSwitch
    const bus = yield* EventBus.EventBus
    const html = renderPage({ events: options.path, stats: options.statsPath, ticker: TICKER_PATH, burst: BURST_PATH })
    yield* router.get(
      "/",
      Effect.succeed(HttpServerResponse.text(html, {
        contentType: "text/html; charset=utf-8",
        headers: { "cache-control": "no-store" }
      }))
    )
    yield* router.get(TICKER_PATH, Effect.map(Ref.get(ticker), tickerState))
    yield* router.post(TICKER_PATH, switchTicker(ticker))
    yield* router.post(BURST_PATH, burst(bus))
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

/**
 * Publishes `{ n, time }` on `demo/tick` (type `tick`) every 2 s while the switch is on, so a fresh
 * page shows movement.
 */
const TickerLive = Layer.scopedDiscard(Effect.gen(function*() {
  const enabled = yield* TickerSwitch
  const bus = yield* EventBus.EventBus
  let n = 0
  const publish = Effect.suspend(() => {
    n += 1
    return bus.publish({ topic: "demo/tick", type: "tick", data: JSON.stringify({ n, time: Date.now() }) })
  }).pipe(Effect.catchAll((error) => Effect.logWarning("demo tick not published", error)))
  const tick = Effect.whenEffect(publish, Ref.get(enabled))
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
  Layer.provide(TickerSwitchLive),
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
