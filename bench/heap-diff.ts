/**
 * Diffs two V8 heap snapshots by constructor (object count and self size), divided by the number
 * of connections added between them: where the per-connection memory goes.
 *
 *   npx tsx bench/heap-diff.ts before.heapsnapshot after.heapsnapshot <connections added> [top]
 *
 * Snapshots come from `npm run bench -- S7 --heap` (.bench-out/prof/S7-<mode>-K<k>.heapsnapshot).
 */
import { readFileSync } from "node:fs"

interface Snapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: ReadonlyArray<string>; readonly node_types: ReadonlyArray<unknown> } }
  readonly nodes: ReadonlyArray<number>
  readonly strings: ReadonlyArray<string>
}

/** Totals per "type:name" (e.g. `object:Connection`, `closure:notify`, `string`). */
const tally = (file: string): Map<string, { count: number; size: number }> => {
  const snap = JSON.parse(readFileSync(file, "utf8")) as Snapshot
  const fields = snap.snapshot.meta.node_fields
  const types = snap.snapshot.meta.node_types[0] as ReadonlyArray<string>
  const width = fields.length
  const iType = fields.indexOf("type")
  const iName = fields.indexOf("name")
  const iSize = fields.indexOf("self_size")
  const out = new Map<string, { count: number; size: number }>()
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType]!]!
    let name = snap.strings[snap.nodes[i + iName]!]!
    if (type === "string" || type === "concatenated string" || type === "sliced string") name = ""
    if (type === "code" || type === "hidden") name = name.slice(0, 40)
    const key = name === "" ? type : `${type}:${name.slice(0, 80)}`
    const entry = out.get(key) ?? { count: 0, size: 0 }
    entry.count++
    entry.size += snap.nodes[i + iSize]!
    out.set(key, entry)
  }
  return out
}

const [before, after, added, topArg] = process.argv.slice(2)
if (before === undefined || after === undefined || added === undefined) {
  console.error("usage: tsx bench/heap-diff.ts <before.heapsnapshot> <after.heapsnapshot> <connections added> [top]")
  process.exit(2)
}
const n = Number(added)
const a = tally(before)
const b = tally(after)
const rows: Array<{ key: string; count: number; size: number }> = []
for (const [key, vb] of b) {
  const va = a.get(key) ?? { count: 0, size: 0 }
  rows.push({ key, count: (vb.count - va.count) / n, size: (vb.size - va.size) / n })
}
for (const [key, va] of a) if (!b.has(key)) rows.push({ key, count: -va.count / n, size: -va.size / n })
rows.sort((x, y) => y.size - x.size)
const total = rows.reduce((s, r) => s + r.size, 0)
console.log(`self size per added connection: ${total.toFixed(0)} B (${n} connections)`)
console.log("   B/conn  objs/conn  type:constructor")
for (const r of rows.slice(0, Number(topArg ?? 40))) {
  console.log(`${r.size.toFixed(0).padStart(9)}  ${r.count.toFixed(2).padStart(9)}  ${r.key}`)
}
