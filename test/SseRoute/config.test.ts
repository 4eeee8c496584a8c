/**
 * Typed configuration: options and environment variables are decoded in one place; a bad value
 * fails the layer with a `ConfigError` naming the option or the variable, never a defect, never
 * silently clamped; the classic router honours the configured paths and turned-off routes.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as EventBus from "../../src/EventBus.js"
import * as EventLog from "../../src/EventLog.js"
import * as SseRoute from "../../src/SseRoute.js"
import { listening, spawnDemo } from "../utils/demo.js"
import { startServer } from "../utils/server.js"
import { request } from "../utils/sse.js"

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

/** Builds the route from the environment and returns the error it failed with. */
const routeError = (env: Record<string, string>) =>
  Effect.scoped(Layer.build(
    SseRoute.layerConfig(SseRoute.fromEnv()).pipe(Layer.provide(EventBus.layerMemory()))
  )).pipe(withEnv(env), Effect.flip)

describe("SseRoute configuration", () => {
  it.effect("a bad environment variable fails the layer with a ConfigError naming it", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<Record<string, string>> = [
        { SLUICE_SSE_PATH: "events" },
        { SLUICE_SSE_MAX_EVENTS: "0" },
        { SLUICE_SSE_MAX_BYTES: "lots" },
        { SLUICE_SSE_HEARTBEAT: "5 millis" },
        { SLUICE_SSE_RETRY_MIN: "100 millis" },
        { SLUICE_SSE_STALL_TIMEOUT: "soon" },
        { SLUICE_SSE_STATS_PATH: "stats" },
        { SLUICE_SSE_PUBLISH: "maybe" }
      ]
      for (const env of cases) {
        const error = yield* routeError(env)
        assert.include(String(error), Object.keys(env)[0]!, JSON.stringify(env))
      }
    }))

  it.effect("a bad code option fails the layer with a ConfigError naming the option", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<[SseRoute.Options, string]> = [
        [{ path: "events" }, "path"],
        [{ retryMin: "100 millis" }, "retryMin"],
        [{ retryMin: "3 seconds", retryMax: "2 seconds" }, "retryMax"],
        [{ maxTopics: 0 }, "maxTopics"],
        [{ maxBodyBytes: 1.5 }, "maxBodyBytes"],
        [{ publishRate: { limit: 0, per: "1 second" } }, "publishRate.limit"]
      ]
      for (const [options, name] of cases) {
        const error = yield* Effect.flip(Effect.scoped(Layer.build(
          SseRoute.layer(options).pipe(Layer.provide(EventBus.layerMemory()))
        )))
        assert.strictEqual(error._op, "InvalidData")
        assert.include(String(error), `SseRoute option ${name}`)
      }
    }))

  it.effect("the bus's and the log's limits come from the environment too", () =>
    Effect.gen(function*() {
      const options = yield* EventBus.fromEnv({ maxReplay: 7 }).pipe(
        withEnv({ SLUICE_BUS_MAX_EVENTS: "5", SLUICE_BUS_STALL_TIMEOUT: "2 seconds" })
      )
      assert.strictEqual(options.maxEvents, 5)
      assert.strictEqual(options.maxReplay, 7)
      const bad = yield* Effect.flip(EventBus.fromEnv().pipe(withEnv({ SLUICE_BUS_MAX_BYTES: "-1" })))
      assert.include(String(bad), "SLUICE_BUS_MAX_BYTES")
      const log = yield* EventLog.memoryFromEnv().pipe(withEnv({ SLUICE_LOG_MAX_EVENTS: "3" }))
      assert.strictEqual(log.maxEvents, 3)
      const badLog = yield* Effect.flip(EventLog.memoryFromEnv().pipe(withEnv({ SLUICE_LOG_MAX_BYTES: "x" })))
      assert.include(String(badLog), "SLUICE_LOG_MAX_BYTES")
      const badBus = yield* Effect.flip(Effect.scoped(Layer.build(EventBus.layerMemory({ maxEvents: 0 }))))
      assert.include(String(badBus), "EventBus option maxEvents")
      assert.isTrue(Config.isConfig(EventBus.fromEnv()))
    }))

  it.scopedLive("the classic router serves the configured paths and leaves turned-off routes unmounted", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ route: { path: "/bus/stream", statsPath: false, metricsPath: "/m" } })
      const stream = yield* Effect.promise(() => request(`${url}/bus/stream`, { until: (t) => t.includes(": sluice") }))
      assert.strictEqual(stream.status, 200)
      assert.strictEqual((yield* Effect.promise(() => request(`${url}/events`))).status, 404)
      assert.strictEqual((yield* Effect.promise(() => request(`${url}/stats`))).status, 404)
      assert.strictEqual((yield* Effect.promise(() => request(`${url}/m`))).status, 200)
    }))

  it.scopedLive("npm start with a bad variable exits with one line naming it, no stack trace", () =>
    Effect.gen(function*() {
      const demo = yield* spawnDemo({ SLUICE_SSE_MAX_EVENTS: "0" })
      const exit = yield* Effect.promise(() => demo.exited)
      assert.strictEqual(exit.code, 1)
      assert.include(demo.output(), "SLUICE_SSE_MAX_EVENTS must be a positive integer")
      assert.notMatch(demo.output(), /\n\s+at /, "no stack trace")
      // and a good configuration starts
      const ok = yield* spawnDemo({ SLUICE_SSE_PATH: "/stream", DEMO_TICK: "false" })
      const url = yield* listening(ok)
      assert.strictEqual((yield* Effect.promise(() => request(`${url}/stream`, { until: (t) => t.includes(": sluice") }))).status, 200)
      ok.child.kill("SIGTERM")
      yield* Effect.promise(() => ok.exited)
    }), { timeout: 60_000 })
})
