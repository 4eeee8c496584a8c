/**
 * The benchmark driver: `npm run bench [-- --smoke] [-- S3 S3p S5 …] [-- --rounds N] [-- --no-pin] [-- --prof]`.
 *
 * Each scenario runs sluice and its baseline in the same run, interleaved (A/B, order reversed on
 * alternate rounds), and reports the median ratio with its min–max spread. One JSON line per row
 * goes to stdout and to .bench-out/results.jsonl; a markdown table closes the run. Any failed
 * delivery assertion makes the run exit non-zero.
 */
import { appendFileSync, mkdirSync, readFileSync } from "node:fs"
import * as Path from "node:path"
import { env as makeEnv, stealMeter } from "./lib/env.js"
import { type Ctx, RigPool, type Row } from "./lib/harness.js"
import { ROOT } from "./lib/ipc.js"
import { markdownTable } from "./lib/table.js"

type Scenario = (ctx: Ctx) => Promise<Array<Row>>
const SCENARIOS: Record<string, () => Promise<Scenario>> = {
  S1: () => import("./scenarios/s1.js").then((m) => m.s1),
  S3: () => import("./scenarios/s3.js").then((m) => m.s3),
  S3P: () => import("./scenarios/s3p.js").then((m) => m.s3p),
  S5: () => import("./scenarios/s5.js").then((m) => m.s5),
  S6: () => import("./scenarios/s6.js").then((m) => m.s6),
  S7: () => import("./scenarios/s7.js").then((m) => m.s7),
  S8: () => import("./scenarios/s8.js").then((m) => m.s8),
  S9: () => import("./scenarios/s9.js").then((m) => m.s9),
  S10: () => import("./scenarios/s10.js").then((m) => m.s10),
  S11: () => import("./scenarios/s11.js").then((m) => m.s11),
  S12: () => import("./scenarios/s12.js").then((m) => m.s12),
  S13: () => import("./scenarios/s13.js").then((m) => m.s13),
  S14: () => import("./scenarios/s14.js").then((m) => m.s14),
  S15: () => import("./scenarios/s15.js").then((m) => m.s15)
}

const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(name)
const option = (name: string) => {
  const i = argv.indexOf(name)
  return i >= 0 ? argv[i + 1] : undefined
}
const smoke = flag("--smoke")
const selected = argv.filter((a) => /^S\d+p?$/i.test(a)).map((a) => a.toUpperCase())
const unknown = selected.filter((s) => SCENARIOS[s] === undefined)
if (unknown.length > 0) {
  console.error(`unknown scenario(s) ${unknown.join(", ")}; known: ${Object.keys(SCENARIOS).join(", ")}`)
  process.exit(2)
}
const names = selected.length > 0 ? selected : Object.keys(SCENARIOS)
const pin = !flag("--no-pin")
const effectVersion = (JSON.parse(readFileSync(Path.join(ROOT, "node_modules/effect/package.json"), "utf8")) as {
  version: string
}).version

const failures: Array<string> = []
const started = Date.now()
const ctx: Ctx = {
  smoke,
  // Smoke checks that everything runs and delivers: one round unless asked otherwise.
  rounds: Number(option("--rounds") ?? (smoke ? 1 : 3)),
  roundsGiven: option("--rounds") !== undefined,
  pin,
  prof: flag("--prof"),
  heap: flag("--heap"),
  env: makeEnv(pin, effectVersion, ROOT),
  log: (message) => console.error(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}`),
  fail: (message) => {
    failures.push(message)
    console.error(`FAIL ${message}`)
    return message
  },
  pool: new RigPool()
}

const outDir = Path.join(ROOT, ".bench-out")
mkdirSync(outDir, { recursive: true })
const resultsFile = Path.join(outDir, "results.jsonl")

ctx.log(`sluice bench${smoke ? " (smoke)" : ""}: ${names.join(" ")}; ${ctx.rounds} rounds; env ${JSON.stringify(ctx.env)}`)
const rows: Array<Row> = []
for (const name of names) {
  ctx.log(`== ${name}`)
  try {
    const scenario = await SCENARIOS[name]!()
    const steal = stealMeter()
    const scenarioRows = await scenario(ctx)
    const hostStealPct = steal()
    ctx.log(`${name}: the hypervisor stole ${hostStealPct ?? "?"} % of the CPU time during the scenario`)
    for (const row of scenarioRows) {
      rows.push(row)
      const line = JSON.stringify({ ...row, hostStealPct, date: new Date().toISOString(), smoke })
      console.log(line)
      appendFileSync(resultsFile, line + "\n")
    }
  } catch (error) {
    ctx.fail(`${name} crashed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
  }
}

await ctx.pool.stop()

const table = markdownTable(rows)
console.log("\n" + table + "\n")
ctx.log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s; results appended to ${Path.relative(ROOT, resultsFile)}`)
if (failures.length > 0) {
  console.error(`\n${failures.length} assertion(s) failed:\n- ${failures.join("\n- ")}`)
  process.exit(1)
}
process.exit(0)
