/** @internal */
import type { MetricData, MetricProducer, ResourceMetrics } from "@opentelemetry/sdk-metrics"
import * as Effect from "effect/Effect"
import { refreshAll } from "./metrics.js"

/**
 * Renders every metric of Effect's default registry in the Prometheus text format (0.0.4) through
 * the OpenTelemetry Prometheus exporter: `@effect/opentelemetry`'s metric producer reads the
 * registry, `@opentelemetry/exporter-prometheus` serializes it (names and label names mapped to the
 * Prometheus charset, `_total` on counters, one `+Inf` bucket per histogram). Both are loaded on the
 * first scrape, so a program that never serves `/metrics` never loads them.
 */
interface Renderer {
  readonly render: () => Promise<string>
}

let renderer: Promise<Renderer> | undefined

const load = async (): Promise<Renderer> => {
  const [{ PrometheusExporter, PrometheusSerializer }, Metrics, Resource] = await Promise.all([
    import("@opentelemetry/exporter-prometheus"),
    import("@effect/opentelemetry/Metrics"),
    import("@effect/opentelemetry/Resource")
  ])
  const producer = Effect.runSync(Effect.provide(Metrics.makeProducer, Resource.layerEmpty))
  // The exporter as a pull-only reader (no server of its own): `/metrics` is the route's.
  const options = { preventServerStart: true, withoutScopeInfo: true, withoutTargetInfo: true }
  const reader = new PrometheusExporter(options)
  reader.setMetricProducer(tidied(producer))
  const serializer = new PrometheusSerializer(undefined, false, undefined, true, true)
  return {
    render: async () => serializer.serialize((await reader.collect()).resourceMetrics)
  }
}

/**
 * What the exporter leaves to its input, made safe for one scrape: a label name that starts with a
 * digit is prefixed with `_` (the exporter maps the charset but not the first character), and two
 * Effect metrics that render under one name (`a.b` and `a_b`, or one name with two descriptions)
 * become one family with each label set once, instead of a duplicate family that fails the scrape.
 */
const tidied = (producer: MetricProducer): MetricProducer => ({
  collect: async (options) => {
    const result = await producer.collect(options)
    tidy(result.resourceMetrics)
    return result
  }
})

const promName = (name: string): string => name.replace(/[^a-zA-Z0-9_]/g, "_").replace(/_{2,}/g, "_")
const labelName = (key: string): string => /^[0-9]/.test(key) ? `_${key}` : key

const tidy = (resourceMetrics: ResourceMetrics): void => {
  for (const scope of resourceMetrics.scopeMetrics) {
    const families = new Map<string, { readonly metric: MetricData; readonly seen: Set<string> }>()
    const kept: Array<MetricData> = []
    for (const metric of scope.metrics) {
      const name = promName(metric.descriptor.name)
      let family = families.get(name)
      if (family === undefined) {
        family = { metric: { ...metric, dataPoints: [] } as MetricData, seen: new Set() }
        families.set(name, family)
        kept.push(family.metric)
      } else if (family.metric.dataPointType !== metric.dataPointType) {
        continue // one name, two types: the first registered wins
      }
      const points = family.metric.dataPoints as Array<(typeof metric.dataPoints)[number]>
      for (const point of metric.dataPoints) {
        const attributes: Record<string, unknown> = {}
        for (const key of Object.keys(point.attributes)) attributes[labelName(key)] = point.attributes[key]
        const series = JSON.stringify(Object.entries(attributes).map(([k, v]) => [promName(k), v]).sort())
        if (family.seen.has(series)) continue
        family.seen.add(series)
        points.push({ ...point, attributes } as never)
      }
    }
    ;(scope as { metrics: Array<MetricData> }).metrics = kept
  }
}

/**
 * The Prometheus text of every metric, with the gauges of every open bus brought up to date first
 * (each bus creates its labelled counters' zero series when it is made).
 * @internal
 */
export const renderAll: Effect.Effect<string> = Effect.zipRight(
  refreshAll,
  Effect.suspend(() => Effect.promise(() => (renderer ??= load()).then((r) => r.render())))
)
