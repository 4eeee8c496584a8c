/**
 * A strict reading of the Prometheus text exposition format (0.0.4), for tests: what a scrape would
 * reject, and the series it would keep. Checks the grammar of every line, one TYPE per family
 * before its samples, `_total` on counters, each series once, and per histogram series one `+Inf`
 * bucket, non-decreasing buckets and `_count` equal to the `+Inf` bucket.
 */
const METRIC = "[a-zA-Z_:][a-zA-Z0-9_:]*"
const LABEL = "[a-zA-Z_][a-zA-Z0-9_]*"
const VALUE = String.raw`"(?:[^"\\\n]|\\[\\"n])*"`
const SAMPLE = new RegExp(
  String.raw`^(${METRIC})(?:\{((?:${LABEL}=${VALUE})(?:,${LABEL}=${VALUE})*)?\})? ([-+]?(?:[0-9.eE+-]+|Inf)|NaN)(?: -?[0-9]+)?$`
)
const LABEL_PAIR = new RegExp(String.raw`(${LABEL})=(${VALUE})`, "g")

export interface Scrape {
  /** Series (`name{labels}`, labels sorted) and their values. */
  readonly series: ReadonlyMap<string, number>
  readonly types: ReadonlyMap<string, string>
  /** What a scraper would reject; empty when the text is valid. */
  readonly problems: ReadonlyArray<string>
}

export const parsePromText = (text: string): Scrape => {
  const problems: Array<string> = []
  const types = new Map<string, string>()
  const series = new Map<string, number>()
  const histograms = new Map<string, { inf: number; buckets: Array<[number, number]>; count?: number }>()
  const familyOf = (name: string) => {
    for (const suffix of ["_bucket", "_count", "_sum"]) {
      const base = name.slice(0, -suffix.length)
      if (name.endsWith(suffix) && types.get(base) === "histogram") return base
    }
    return name
  }
  for (const line of text.split("\n")) {
    if (line === "") continue
    if (line.startsWith("#")) {
      const type = /^# TYPE (\S+) (\S+)$/.exec(line)
      if (type !== null) {
        if (types.has(type[1]!)) problems.push(`second TYPE for ${type[1]}`)
        if (!new RegExp(`^${METRIC}$`).test(type[1]!)) problems.push(`invalid metric name ${type[1]}`)
        if (type[2] === "counter" && !type[1]!.endsWith("_total")) problems.push(`counter without _total: ${type[1]}`)
        types.set(type[1]!, type[2]!)
      } else if (!/^# (HELP|UNIT) \S+ /.test(line) && line.startsWith("# HELP")) {
        problems.push(`bad HELP line: ${line}`)
      }
      continue
    }
    const sample = SAMPLE.exec(line)
    if (sample === null) {
      problems.push(`bad sample line: ${line}`)
      continue
    }
    const [, name, labelText = "", value] = sample
    const labels = Array.from(labelText.matchAll(LABEL_PAIR), (m) => [m[1]!, m[2]!] as const)
    const names = labels.map(([k]) => k)
    if (new Set(names).size !== names.length) problems.push(`repeated label name: ${line}`)
    const family = familyOf(name!)
    if (!types.has(family)) problems.push(`sample before its TYPE: ${line}`)
    const key = `${name}{${labels.filter(([k]) => k !== "le").map(([k, v]) => `${k}=${v}`).sort().join(",")}}`
    const le = labels.find(([k]) => k === "le")?.[1]
    const full = le === undefined ? key : `${key}le=${le}`
    if (series.has(full)) problems.push(`duplicate series: ${line}`)
    const n = value === "+Inf" || value === "Inf" ? Infinity : value === "-Inf" ? -Infinity : Number(value)
    series.set(full, n)
    if (types.get(family) === "histogram") {
      const id = key.replace(/^[^{]*/, family)
      const h = histograms.get(id) ?? { inf: 0, buckets: [] }
      histograms.set(id, h)
      if (name!.endsWith("_bucket")) {
        if (le === undefined) problems.push(`bucket without le: ${line}`)
        else if (le === `"+Inf"`) h.inf++
        h.buckets.push([le === `"+Inf"` ? Infinity : Number(JSON.parse(le ?? "0")), n])
      } else if (name!.endsWith("_count")) {
        h.count = n
      }
    }
  }
  for (const [id, h] of histograms) {
    if (h.inf !== 1) problems.push(`${id}: ${h.inf} +Inf buckets`)
    const sorted = [...h.buckets].sort((a, b) => a[0] - b[0])
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]![1] < sorted[i - 1]![1]) problems.push(`${id}: buckets decrease at le=${sorted[i]![0]}`)
    }
    if (h.count !== sorted.at(-1)?.[1]) problems.push(`${id}: _count ${h.count} is not the +Inf bucket`)
  }
  return { series, types, problems }
}
