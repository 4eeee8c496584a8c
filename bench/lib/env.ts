import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import * as Os from "node:os"

export interface Env {
  readonly node: string
  readonly nproc: number
  readonly cpu: string
  readonly kernel: string
  readonly effect: string
  readonly pinned: boolean
  /** The commit measured, `+dirty` when src/ has uncommitted changes (the run measures the working tree). */
  readonly commit: string
}

const git = (cwd: string, args: ReadonlyArray<string>): string => {
  try {
    return execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim()
  } catch {
    return ""
  }
}

export const env = (pinned: boolean, effectVersion: string, root: string): Env => ({
  node: process.version,
  nproc: Os.availableParallelism(),
  cpu: Os.cpus()[0]?.model.trim() ?? "unknown",
  kernel: `${Os.type()} ${Os.release()}`,
  effect: effectVersion,
  pinned,
  commit: (git(root, ["rev-parse", "--short", "HEAD"]) || "unknown") +
    (git(root, ["status", "--porcelain", "--", "src"]) === "" ? "" : "+dirty")
})

/** Aggregate CPU ticks from /proc/stat (Linux), or undefined elsewhere. */
const cpuTicks = (): { total: number; steal: number } | undefined => {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
    return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7] ?? 0 }
  } catch {
    return undefined
  }
}

/**
 * Starts measuring the share of CPU time the hypervisor gave to other guests ("steal"): a noisy
 * neighbour shows up here. Returns a function giving the percentage since the start.
 */
export const stealMeter = (): (() => number | undefined) => {
  const start = cpuTicks()
  return () => {
    const end = cpuTicks()
    if (start === undefined || end === undefined || end.total === start.total) return undefined
    return Math.round((1000 * (end.steal - start.steal)) / (end.total - start.total)) / 10
  }
}
