import * as v8 from "node:v8"
import * as vm from "node:vm"

v8.setFlagsFromString("--expose-gc")
const gc = vm.runInNewContext("gc") as () => void

/** Bytes this process holds in JS objects and in buffers, after a full collection. */
export const heldBytes = (): number => {
  gc()
  gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

export const MiB = 1024 * 1024

export const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`
