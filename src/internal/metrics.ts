/** @internal */
import * as Metric from "effect/Metric"

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
export const published = Metric.counter("sluice_published_total", { description: "Events appended to the log" })
/** @internal */
export const delivered = Metric.counter("sluice_delivered_total", {
  description: "Events handed to subscribers (live and replay)"
})
/** @internal */
export const ends = Metric.counter("sluice_subscriber_ends_total", { description: "Subscriptions ended, by reason" })
/** @internal */
export const resumes = Metric.counter("sluice_resumes_total", { description: "Subscription starts, by outcome" })
