/**
 * An in-process V8 CPU profile of a measured phase only (not of module loading), with positions in
 * TypeScript sources mapped back through tsx's source maps so the profile names real lines.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import * as V8 from "node:v8"
import * as Inspector from "node:inspector"
import { findSourceMap } from "node:module"
import * as Path from "node:path"
import { ROOT } from "./ipc.js"

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
  columnNumber: number
}

let session: Inspector.Session | undefined

const post = <A>(s: Inspector.Session, method: string, params?: object) =>
  new Promise<A>((resolve, reject) =>
    s.post(method, params ?? {}, (error, result) => (error ? reject(error) : resolve(result as A)))
  )

export const startProfile = async (intervalMicros = 200): Promise<void> => {
  session = new Inspector.Session()
  session.connect()
  await post(session, "Profiler.enable")
  await post(session, "Profiler.setSamplingInterval", { interval: intervalMicros })
  await post(session, "Profiler.start")
}

const outFile = (name: string, ext: string): string => {
  const dir = Path.join(ROOT, ".bench-out", "prof")
  mkdirSync(dir, { recursive: true })
  return Path.join(dir, `${name.replace(/[^A-Za-z0-9=._-]+/g, "_")}.${ext}`)
}

/** Writes a V8 heap snapshot of this process; returns the path. */
export const writeHeapSnapshot = (name: string): string => V8.writeHeapSnapshot(outFile(name, "heapsnapshot"))

/** Stops the profiler and writes `.bench-out/prof/<name>.cpuprofile`; returns the path. */
export const stopProfile = async (name: string): Promise<string | undefined> => {
  const s = session
  if (s === undefined) return undefined
  session = undefined
  const { profile } = await post<{ profile: { nodes: Array<{ callFrame: CallFrame }> } }>(s, "Profiler.stop")
  s.disconnect()
  for (const node of profile.nodes) {
    const frame = node.callFrame
    if (!frame.url.endsWith(".ts")) continue
    const map = findSourceMap(frame.url)
    if (map === undefined) continue
    const entry = map.findEntry(frame.lineNumber, frame.columnNumber) as {
      originalLine?: number
      originalColumn?: number
      name?: string
    }
    if (entry.originalLine === undefined) continue
    frame.lineNumber = entry.originalLine
    frame.columnNumber = entry.originalColumn ?? 0
    if (frame.functionName === "" && entry.name !== undefined) frame.functionName = entry.name
  }
  const file = outFile(name, "cpuprofile")
  writeFileSync(file, JSON.stringify(profile))
  return file
}
