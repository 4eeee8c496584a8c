/** Small statistics helpers and the shared frame payload of every scenario. */

export const median = (xs: ReadonlyArray<number>): number => quantile(xs, 0.5)

/** Nearest-rank quantile (q in [0, 1]); NaN for an empty sample. */
export const quantile = (xs: ReadonlyArray<number>, q: number): number => {
  if (xs.length === 0) return Number.NaN
  const sorted = Float64Array.from(xs).sort()
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank]!
}

/** The median and the 99th percentile of a latency sample (NaN when empty). */
export const latencyQuantiles = (samples: ReadonlyArray<number>): { p50: number; p99: number } => ({
  p50: quantile(samples, 0.5),
  p99: quantile(samples, 0.99)
})

export const min = (xs: ReadonlyArray<number>): number => xs.reduce((a, b) => Math.min(a, b), Infinity)
export const max = (xs: ReadonlyArray<number>): number => xs.reduce((a, b) => Math.max(a, b), -Infinity)
export const sum = (xs: ReadonlyArray<number>): number => xs.reduce((a, b) => a + b, 0)

/** Rounds for JSON output: 3 significant digits. */
export const sig = (x: number, digits = 3): number => {
  if (!Number.isFinite(x) || x === 0) return x
  return Number(x.toPrecision(digits))
}

/** `1.23 M`, `456 k`, `789` */
export const human = (x: number): string => {
  if (!Number.isFinite(x)) return String(x)
  const a = Math.abs(x)
  if (a >= 1e6) return `${sig(x / 1e6)} M`
  if (a >= 1e4) return `${sig(x / 1e3)} k`
  return `${sig(x)}`
}

/**
 * The `data` of every benchmark event: JSON with the publish time (ms since the Unix epoch,
 * `performance.timeOrigin + performance.now()`, equal clocks across processes) and padding, about
 * `size` characters in all. The load generator reads `"t":` back to measure latency.
 */
export const eventData = (t: number, size = 70): string => {
  const head = `{"t":${t.toFixed(3)},"p":"`
  const pad = Math.max(0, size - head.length - 2)
  return head + PAD.slice(0, pad) + `"}`
}
const PAD = "x".repeat(1 << 16)
