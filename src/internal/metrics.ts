/** @internal */
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import type * as EventBus from "../EventBus.js"

/** @internal */
export const subscribers = Metric.gauge("sluice_subscribers", { description: "Open subscriptions" })
/** @internal */
export const bufferedEvents = Metric.gauge("sluice_buffered_events", {
  description: "Events held in subscriber buffers, not yet delivered"
})
/** @internal */
export const bufferedBytes = Metric.gauge("sluice_buffered_bytes", {
  description: "Encoded bytes held in subscriber buffers, not yet delivered"
})
/** @internal */
export const published = Metric.counter("sluice_published_total", {
  description: "Events appended to the log",
  incremental: true
})
/** @internal */
export const delivered = Metric.counter("sluice_delivered_total", {
  description: "Events handed to subscribers (live and replay)",
  incremental: true
})
/** @internal */
export const ends = Metric.counter("sluice_subscriber_ends_total", {
  description: "Subscriptions ended, by reason",
  incremental: true
})
/** @internal */
export const resumes = Metric.counter("sluice_resumes_total", {
  description: "Subscription starts, by outcome",
  incremental: true
})

/** Every value of the `reason` label of `ends` (the compiler checks the record is complete). */
const END_REASONS: Record<EventBus.EndReason, null> = {
  overflow: null,
  stalled: null,
  shutdown: null,
  lifetime: null,
  unavailable: null,
  "log-reset": null,
  closed: null
}
/** Every value of the `outcome` label of `resumes`. */
const RESUME_OUTCOMES: Record<EventBus.ResumeStat, null> = {
  live: null,
  resumed: null,
  "epoch-mismatch": null,
  expired: null,
  "too-far-behind": null,
  future: null,
  invalid: null
}

const zeroLabels = [
  ...Object.keys(END_REASONS).map((r) => [ends, [MetricLabel.make("reason", r)]] as const),
  ...Object.keys(RESUME_OUTCOMES).map((r) => [resumes, [MetricLabel.make("outcome", r)]] as const)
]

/**
 * Creates the zero series of every labelled sluice counter (adding 0 changes no value), so an alert
 * on `sluice_subscriber_ends_total{reason="stalled"}` or a reset outcome has data before the first one.
 * @internal
 */
export const zeroSeries = (): void => {
  published.unsafeUpdate(0, [])
  delivered.unsafeUpdate(0, [])
  for (const [metric, labels] of zeroLabels) metric.unsafeUpdate(0, labels)
}
