/**
 * Reprints result rows from `.bench-out/results.jsonl` as the markdown table a run ends with: the
 * rows of the latest run of each scenario named (all scenarios when none is).
 *
 *   npx tsx bench/table.ts            # the latest run of every scenario
 *   npx tsx bench/table.ts S1 S3      # only these
 */
import { readFileSync } from "node:fs"
import * as Path from "node:path"
import type { Row } from "./lib/harness.js"
import { ROOT } from "./lib/ipc.js"
import { markdownTable } from "./lib/table.js"

const wanted = new Set(process.argv.slice(2).map((s) => s.toUpperCase()))
const file = Path.join(ROOT, ".bench-out", "results.jsonl")
const rows = readFileSync(file, "utf8").split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as Row & { date: string })
// A run writes a scenario's rows together with one date per row, seconds apart: keep, per scenario,
// the rows of its latest run (same commit and smoke flag, dated within a minute of its last row).
const latest = new Map<string, Array<Row & { date: string }>>()
for (const row of rows) {
  if (wanted.size > 0 && !wanted.has(row.scenario)) continue
  const list = latest.get(row.scenario)
  const last = list?.[list.length - 1]
  const sameRun = last !== undefined && Date.parse(row.date) - Date.parse(last.date) < 60_000 &&
    JSON.stringify(row.env) === JSON.stringify(last.env) &&
    (row as { smoke?: boolean }).smoke === (last as { smoke?: boolean }).smoke
  if (sameRun) list!.push(row)
  else latest.set(row.scenario, [row])
}
const out = [...latest.values()].flat()
if (out.length === 0) {
  console.error(`no rows${wanted.size > 0 ? ` for ${[...wanted].join(", ")}` : ""} in ${Path.relative(ROOT, file)}`)
  process.exit(1)
}
console.log(markdownTable(out))
