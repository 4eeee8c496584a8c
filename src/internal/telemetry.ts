/** @internal */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as LogLevel from "effect/LogLevel"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Tracer from "effect/Tracer"
import type * as Event from "../Event.js"
import type * as EventBus from "../EventBus.js"
import { formatId } from "./event.js"
import { inspectSubscriber, keepRaw, streamOf } from "./eventBus.js"
import type { Session } from "./session.js"

type Bus = EventBus.EventBus["Type"]

/**
 * Effect's built-in tracer, installed when no other is: its spans reach no exporter, and one costs
 * about 10 µs (a span per 64-event batch halved in-process publish throughput, bench S1). Spans are
 * therefore opened only under another tracer (e.g. `@effect/opentelemetry`'s).
 */
const builtInTracer: Tracer.Tracer = Effect.runSync(Effect.tracer)

/** `self` in a span when a tracer other than the built-in one is installed, else `self` as is. */
const traced = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  name: string,
  options: () => Tracer.SpanOptions,
  annotate?: (a: A) => Effect.Effect<void>
): Effect.Effect<A, E, R> =>
  Effect.tracerWith((tracer) =>
    tracer === builtInTracer
      ? self
      : Effect.withSpan(annotate === undefined ? self : Effect.tap(self, annotate), name, options())
  )

/**
 * Spans and logs around a bus's operations, once per call and never per event: a span per
 * `publish` / `publishAll` (topic, type, ids, batch size) and per subscription start (topics,
 * outcome, reset reason); a log line per reset and per end, at a level that says whether an
 * operator should look (overflow and stall are warnings, the rest debug).
 * @internal
 */
export const instrument = (bus: Bus): Bus => {
  const subscribe = (options?: EventBus.SubscribeOptions) =>
    traced(
      Effect.tap(bus.subscribe(options), (subscription) => Effect.zipRight(logReset(subscription), logEndOnClose(subscription))),
      "EventBus.subscribe",
      () => ({ kind: "consumer", attributes: subscribeAttributes(options) }),
      annotateOutcome
    )
  return keepRaw(bus, {
    ...bus,
    publish: (input) =>
      traced(bus.publish(input), "EventBus.publish", () => ({
        kind: "producer",
        attributes: { "sluice.topic": input.topic, "sluice.type": input.type ?? "message", "sluice.batch_size": 1 }
      }), (event) => Effect.annotateCurrentSpan("sluice.event_id", formatId(event.id))),
    publishAll: (inputs) =>
      Effect.suspend(() => {
        const batch = Array.isArray(inputs) ? inputs as ReadonlyArray<Event.EventInput> : Array.from(inputs)
        return traced(bus.publishAll(batch), "EventBus.publishAll", () => ({
          kind: "producer",
          attributes: batchAttributes(batch)
        }), annotateBatch)
      }),
    subscribe,
    stream: (options) => Effect.map(subscribe(options), streamOf),
    streamLazy: (options) => Stream.unwrapScoped(Effect.map(subscribe(options), (s) => s.events))
  })
}

const subscribeAttributes = (options: EventBus.SubscribeOptions | undefined): Record<string, unknown> => ({
  "sluice.topics": options?.topics === undefined || options.topics.length === 0 ? "*" : options.topics.join(","),
  "sluice.resume": options?.after !== undefined
})

/** The first event's topic and type stand for the batch (most batches have one of each). */
const batchAttributes = (batch: ReadonlyArray<Event.EventInput>): Record<string, unknown> => {
  const first = batch[0]
  return first === undefined
    ? { "sluice.batch_size": 0 }
    : { "sluice.topic": first.topic, "sluice.type": first.type ?? "message", "sluice.batch_size": batch.length }
}

const annotateBatch = (events: ReadonlyArray<Event.Event>) =>
  events.length === 0 ? Effect.void : Effect.annotateCurrentSpan({
    "sluice.first_id": formatId(events[0]!.id),
    "sluice.last_id": formatId(events[events.length - 1]!.id)
  })

const annotateOutcome = ({ outcome }: EventBus.Subscription): Effect.Effect<void> =>
  outcome._tag === "Reset"
    ? Effect.annotateCurrentSpan({ "sluice.outcome": "reset", "sluice.reset_reason": outcome.reason })
    : Effect.annotateCurrentSpan("sluice.outcome", outcome._tag.toLowerCase())

/** A reset is logged at Info, with its reason. */
const logReset = ({ outcome }: EventBus.Subscription): Effect.Effect<void> =>
  outcome._tag !== "Reset" ? Effect.void : Effect.logInfo(`subscription reset: ${outcome.message}`).pipe(
    Effect.annotateLogs({ "sluice.reset_reason": outcome.reason, "sluice.head": formatId(outcome.head) })
  )

const END_LEVELS: Record<EventBus.EndReason, LogLevel.LogLevel> = {
  overflow: LogLevel.Warning,
  stalled: LogLevel.Warning,
  shutdown: LogLevel.Debug,
  lifetime: LogLevel.Debug,
  unavailable: LogLevel.Warning,
  closed: LogLevel.Debug,
  "log-reset": LogLevel.Warning
}

/** Logs the end reason when the subscription's scope closes. */
const logEndOnClose = (subscription: EventBus.Subscription): Effect.Effect<void, never, Scope.Scope> =>
  Effect.addFinalizer(() =>
    Effect.suspend(() => {
      const reason = inspectSubscriber(subscription).endReason ?? "closed"
      return Effect.logWithLevel(END_LEVELS[reason], `subscription ended: ${reason}`).pipe(
        Effect.annotateLogs("sluice.end_reason", reason)
      )
    })
  )

/**
 * A span for one SSE connection, when a tracer other than the built-in one is installed: it starts
 * now (as the session is made, a child of the request's span) and ends when the session is released,
 * from the session's own release path, whoever owns the session by then. It carries the end reason,
 * the events delivered and the lifetime; nothing is recorded per event. `undefined` without a tracer.
 * @internal
 */
export const connectionSpan = (
  attributes: Record<string, unknown>
): Effect.Effect<((session: Session) => void) | undefined> =>
  Effect.tracerWith((tracer) =>
    tracer === builtInTracer
      ? Effect.succeed(undefined)
      : Effect.zipWith(
        Effect.makeSpan("SseRoute.connection", { kind: "internal", attributes }),
        Effect.clock,
        (span, clock) => (session: Session) => {
          const end = clock.unsafeCurrentTimeNanos()
          span.attribute("sluice.end_reason", session.sub.endReason ?? "closed")
          span.attribute("sluice.events_delivered", session.written)
          span.attribute("sluice.lifetime_ms", Number(end - span.status.startTime) / 1e6)
          span.attribute("sluice.destroyed", session.state === "destroyed")
          span.end(end, Exit.void)
        }
      )
  )

/** The attributes a connection's span starts with. @internal */
export const connectionAttributes = (
  transport: "node" | "portable",
  options: EventBus.SubscribeOptions,
  outcome: EventBus.ResumeOutcome
): Record<string, unknown> => ({
  ...subscribeAttributes(options),
  "sluice.transport": transport,
  "sluice.outcome": outcome._tag === "Reset" ? "reset" : outcome._tag.toLowerCase(),
  ...(outcome._tag === "Reset" ? { "sluice.reset_reason": outcome.reason } : {})
})
