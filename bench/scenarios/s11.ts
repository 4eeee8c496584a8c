/**
 * S11: what sluice's spans and logs cost on the publish path. The same memory log behind the bus
 * as `EventBus.make` builds it (instrumented: spans only under a tracer other than Effect's
 * built-in one) and the uninstrumented core (`internal/eventBus.ts` `make`), interleaved in this
 * process: `publishAll` of 64 and single `publish`es, one `takeAll` subscriber draining. A third
 * variant installs an OpenTelemetry tracer (`@effect/opentelemetry`, spans sampled and dropped),
 * which is what tracing costs when it is on.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { AlwaysOnSampler, NoopSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as EventBus from "../../src/EventBus.js"
import type * as Event from "../../src/Event.js"
import * as EventLog from "../../src/EventLog.js"
import * as core from "../../src/internal/eventBus.js"
import { type Ctx, interleave, makeRow, type Row } from "../lib/harness.js"
import { human } from "../lib/stats.js"

type Variant = "core" | "instrumented" | "otel"

const Otel = NodeSdk.layer(() => ({
  spanProcessor: new NoopSpanProcessor(),
  tracerConfig: { sampler: new AlwaysOnSampler() }
}))

/** Publishes `events` in calls of `batch` (1 = `publish`), returns events per second. */
const measure = (variant: Variant, events: number, batch: number): Promise<number> => {
  const inputs: Array<Event.EventInput> = Array.from({ length: batch }, (_, i) => ({ topic: "bench", type: "x", data: `e${i}` }))
  const program = Effect.gen(function*() {
    const log = yield* EventLog.makeMemory({ maxEvents: 10_000 })
    const options = { maxEvents: 1e9, maxBytes: 2 ** 52 }
    const bus = yield* (variant === "core" ? core.make(options, log) : EventBus.make(options)).pipe(
      Effect.provideService(EventLog.EventLog, log)
    )
    const sub = yield* bus.subscribe({ maxEvents: 1e9, maxBytes: 2 ** 52 })
    const once = batch === 1 ? bus.publish(inputs[0]!) : bus.publishAll(inputs)
    const run = (n: number) =>
      Effect.gen(function*() {
        for (let sent = 0; sent < n; sent += batch) {
          yield* once
          if ((sent / batch) % 16 === 15) {
            yield* sub.takeAll // the buffer holds what 16 calls published: this returns at once
            yield* Effect.yieldNow()
          }
        }
      })
    yield* run(Math.min(events / 10, 50_000)) // warm-up
    const t0 = performance.now()
    yield* run(events)
    return events / ((performance.now() - t0) / 1000)
  }).pipe(Effect.scoped)
  return Effect.runPromise(variant === "otel" ? Effect.provide(program, Otel) : Effect.provide(program, Layer.empty))
}

export const s11 = async (ctx: Ctx): Promise<Array<Row>> => {
  const rows: Array<Row> = []
  for (const batch of [64, 1]) {
    const events = ctx.smoke ? 64_000 : batch === 1 ? 400_000 : 4_000_000
    const variants = ["core", "instrumented", "otel"] as const
    const reps = await interleave(ctx, `S11 batch=${batch}`, variants, (v) => measure(v, events, batch), (r) => `${human(r)} events/s`)
    for (const variant of ["instrumented", "otel"] as const) {
      rows.push(makeRow(ctx, {
        scenario: "S11",
        params: { batch, events, variant: variant === "otel" ? "OpenTelemetry tracer (spans on)" : "no tracer" },
        metric: "published events/s",
        better: "higher",
        baselineName: "uninstrumented core",
        sluice: reps[variant],
        baseline: reps.core
      }))
    }
  }
  return rows
}
