/**
 * Summarises a `.cpuprofile` (from `npm run bench -- --prof`, written to .bench-out/prof):
 * self time by package/area and the top functions by self time.
 *
 *   npx tsx bench/profile-summary.ts .bench-out/prof/<name>.cpuprofile [top] [--focus <text>]
 *
 * `--focus` adds the inclusive time of every function whose label contains <text>, with its callees.
 */
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

interface Node {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly children?: ReadonlyArray<number>
}
interface Profile {
  readonly nodes: ReadonlyArray<Node>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const file = process.argv[2]
if (file === undefined) {
  console.error("usage: tsx bench/profile-summary.ts <file.cpuprofile> [top]")
  process.exit(2)
}
const focusAt = process.argv.indexOf("--focus")
const focus = focusAt > 0 ? process.argv[focusAt + 1] : undefined
const top = Number(process.argv[3] !== undefined && !process.argv[3].startsWith("--") ? process.argv[3] : 30)
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const self = new Map<number, number>()
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]!
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
}
const total = [...self.values()].reduce((a, b) => a + b, 0)

const area = (url: string, name: string): string => {
  if (url === "") return name.startsWith("(") ? name : "(native)"
  if (url.includes("/node_modules/effect/")) return "effect"
  if (url.includes("/node_modules/@effect/platform-node/")) return "@effect/platform-node"
  if (url.includes("/node_modules/@effect/platform/")) return "@effect/platform"
  if (url.includes("/node_modules/")) return url.replace(/.*\/node_modules\/((@[^/]+\/)?[^/]+).*/, "$1")
  if (url.includes("/src/")) return "sluice src"
  if (url.includes("/bench/") || url.includes("/test/")) return "bench harness"
  if (url.startsWith("node:")) return "node core"
  return url
}

/** For an anonymous function in a TypeScript file, the start of its source line names it. */
const sources = new Map<string, Array<string>>()
const sourceLine = (url: string, line: number): string => {
  if (!url.endsWith(".ts")) return "(anonymous)"
  let lines = sources.get(url)
  if (lines === undefined) {
    try {
      lines = readFileSync(url.startsWith("file:") ? fileURLToPath(url) : url, "utf8").split("\n")
    } catch {
      lines = []
    }
    sources.set(url, lines)
  }
  const text = lines[line]?.trim()
  return text === undefined ? "(anonymous)" : `«${text.slice(0, 60)}»`
}

const areas = new Map<string, number>()
const fns = new Map<string, number>()
for (const [id, us] of self) {
  const node = byId.get(id)!
  const { functionName, lineNumber, url } = node.callFrame
  const a = area(url, functionName)
  areas.set(a, (areas.get(a) ?? 0) + us)
  const short = url.replace(/.*\/(node_modules\/|src\/|bench\/|test\/)/, "$1")
  const key = `${functionName || sourceLine(url, lineNumber)}  ${short}:${lineNumber + 1}`
  fns.set(key, (fns.get(key) ?? 0) + us)
}
const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)} %`
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled`)
console.log("\nself time by area:")
for (const [a, us] of [...areas].sort((x, y) => y[1] - x[1])) console.log(`  ${pct(us)}  ${a}`)
console.log(`\ntop ${top} functions by self time:`)
for (const [f, us] of [...fns].sort((x, y) => y[1] - x[1]).slice(0, top)) console.log(`  ${pct(us)}  ${f}`)

if (focus !== undefined) {
  const label = (node: Node) => {
    const { functionName, lineNumber, url } = node.callFrame
    const short = url.replace(/.*\/(node_modules\/|src\/|bench\/|test\/)/, "$1")
    return `${functionName || sourceLine(url, lineNumber)}  ${short}:${lineNumber + 1}`
  }
  const inclusive = new Map<number, number>()
  const visit = (id: number): number => {
    const node = byId.get(id)!
    let t = self.get(id) ?? 0
    for (const c of node.children ?? []) t += visit(c)
    inclusive.set(id, t)
    return t
  }
  visit(profile.nodes[0]!.id)
  const matched = profile.nodes.filter((n) => label(n).includes(focus))
  const total = matched.reduce((a, n) => a + inclusive.get(n.id)!, 0)
  const selfOf = matched.reduce((a, n) => a + (self.get(n.id) ?? 0), 0)
  console.log(`\nfocus "${focus}": ${pct(total)} inclusive, ${pct(selfOf)} self, in ${matched.length} call-tree nodes; callees:`)
  const callees = new Map<string, number>()
  for (const n of matched) {
    for (const c of n.children ?? []) {
      const key = label(byId.get(c)!)
      callees.set(key, (callees.get(key) ?? 0) + inclusive.get(c)!)
    }
  }
  for (const [k, us] of [...callees].sort((x, y) => y[1] - x[1]).slice(0, top)) console.log(`  ${pct(us)}  ${k}`)
  // Who calls it: the focused nodes' inclusive time by caller chain (three frames up).
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const callers = new Map<string, number>()
  for (const n of matched) {
    const chain: Array<string> = []
    let id = parent.get(n.id)
    while (id !== undefined && chain.length < 3) {
      chain.push(label(byId.get(id)!))
      id = parent.get(id)
    }
    const key = chain.join("  <-  ")
    callers.set(key, (callers.get(key) ?? 0) + inclusive.get(n.id)!)
  }
  console.log(`callers of "${focus}":`)
  for (const [k, us] of [...callers].sort((x, y) => y[1] - x[1]).slice(0, 8)) console.log(`  ${pct(us)}  ${k}`)
}
