/** The markdown table of result rows that closes a run (and that `bench/table.ts` reprints). */
import type { Row } from "./harness.js"
import { human, sig } from "./stats.js"

const fmt = (x: number, metric: string) => (/events\/s|deliveries\/s/.test(metric) ? human(x) : String(sig(x)))

export const markdownTable = (rows: ReadonlyArray<Pick<Row, "scenario" | "params" | "metric" | "sluice" | "baseline" | "baselineName" | "ratio" | "spread" | "goal" | "met">>): string =>
  [
    "| Scenario | Params | Metric | sluice | baseline | ratio (median) | spread | goal | met |",
    "|---|---|---|---|---|---|---|---|---|",
    ...rows.map((r) => {
      const params = Object.entries(r.params).map(([k, v]) => `${k}=${v}`).join(" ")
      const met = r.met === undefined ? "" : r.met ? "yes" : "**no**"
      return `| ${r.scenario} | ${params} | ${r.metric} | ${fmt(r.sluice, r.metric)} | ${fmt(r.baseline, r.metric)} (${r.baselineName}) | ${r.ratio} | ${r.spread[0]}–${r.spread[1]} | ${r.goal ?? ""} | ${met} |`
    })
  ].join("\n")
