/** @internal */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import type * as EventBus from "../EventBus.js"

/** @internal */
export const subscribers = Metric.gauge("sluice_subscribers", { description: "Open subscriptions" })
/** @internal */
export const sseConnections = Metric.gauge("sluice_sse_connections", {
  description: "Open SSE connections (subscriptions of the SSE route)"
})
/** @internal */
export const bufferedEvents = Metric.gauge("sluice_buffered_events", {
  description: "Events held in subscriber buffers, not yet delivered"
})
/** @internal */
export const bufferedBytes = Metric.gauge("sluice_buffered_bytes", {
  description: "Encoded bytes held in subscriber buffers, not yet delivered"
})
/** @internal */
export const logHead = Metric.gauge("sluice_log_head", { description: "Sequence number of the log's newest event" })
/** @internal */
export const logEarliest = Metric.gauge("sluice_log_earliest", {
  description: "Sequence number of the log's oldest retained event (head + 1 when empty)"
})
/** @internal */
export const logLag = Metric.gauge("sluice_log_lag_events", {
  description: "Events appended to the log and not yet fanned out by this bus (its follower's lag)"
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

type Labels = ReadonlyArray<MetricLabel.MetricLabel>

/** The buses open in this process, by name (each bus's `bus` label is unique among them). */
const open = new Map<string, BusMetrics>()

/**
 * Brings the gauges of every open bus up to date (the log's head and earliest are read now): a
 * scrape of `/metrics` on any route shows every bus of the process as it is.
 * @internal
 */
export const refreshAll: Effect.Effect<void> = Effect.suspend(() =>
  Effect.forEach(Array.from(open.values()), (m) => m.refresh, { discard: true })
)

/**
 * The metrics of one bus, every series labelled `bus="<name>"`: two buses in one process report
 * separately. The labels are built once; an update on the hot path costs what an unlabelled one did.
 * @internal
 */
export class BusMetrics {
  readonly labels: Labels
  private readonly endLabels: Record<EventBus.EndReason, Labels>
  private readonly resumeLabels: Record<EventBus.ResumeStat, Labels>

  /** Claims `name`, or `name-2`, `name-3`, … when a bus of that name is open; see {@link release}. */
  constructor(name: string) {
    let claimed = name
    for (let i = 2; open.has(claimed); i++) claimed = `${name}-${i}`
    open.set(claimed, this)
    this.name = claimed
    const bus = MetricLabel.make("bus", claimed)
    this.labels = [bus]
    const with_ = <K extends string>(key: string, values: Record<K, null>) =>
      Object.fromEntries(Object.keys(values).map((v) => [v, [bus, MetricLabel.make(key, v)]])) as unknown as Record<K, Labels>
    this.endLabels = with_("reason", END_REASONS)
    this.resumeLabels = with_("outcome", RESUME_OUTCOMES)
    this.zeroSeries()
  }

  readonly name: string
  /** Reads what the gauges show and sets them (the bus sets it to its stats). */
  refresh: Effect.Effect<void> = Effect.void

  /**
   * Creates the zero series of every labelled counter (adding 0 changes no value), so an alert on
   * `sluice_subscriber_ends_total{reason="stalled"}` or a reset outcome has data before the first one.
   */
  private zeroSeries(): void {
    published.unsafeUpdate(0, this.labels)
    delivered.unsafeUpdate(0, this.labels)
    for (const labels of Object.values<Labels>(this.endLabels)) ends.unsafeUpdate(0, labels)
    for (const labels of Object.values<Labels>(this.resumeLabels)) resumes.unsafeUpdate(0, labels)
  }

  published(n: number): void {
    published.unsafeUpdate(n, this.labels)
  }

  delivered(n: number): void {
    delivered.unsafeUpdate(n, this.labels)
  }

  end(reason: EventBus.EndReason): void {
    ends.unsafeUpdate(1, this.endLabels[reason])
  }

  resume(outcome: EventBus.ResumeStat): void {
    resumes.unsafeUpdate(1, this.resumeLabels[outcome])
  }

  gauge(gauge: Metric.Metric.Gauge<number>, value: number): void {
    gauge.unsafeUpdate(value, this.labels)
  }

  /** The bus closed: its name is free again (its series stay, at their last values). */
  release(): void {
    if (open.get(this.name) === this) open.delete(this.name)
  }
}
