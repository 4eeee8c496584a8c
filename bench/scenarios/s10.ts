/**
 * S10: append throughput of the Redis log (`sluice/EventLog/Redis`: one Lua script per append, by
 * EVALSHA) vs raw node-redis `XADD … MAXLEN ~` on the same Redis (127.0.0.1:6379), interleaved.
 * Two shapes: single events with 64 appends in flight (node-redis pipelines them per tick), and
 * batches of 64 events (one script call vs a pipeline of 64 XADDs). Each run uses keys of its own,
 * deleted afterwards. Both variants run in the driver's process on one connection each.
 */
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import { createClient } from "redis"
import * as RedisLog from "../../src/EventLog/Redis.js"
import { type Ctx, interleave, makeRow, type Row } from "../lib/harness.js"
import { eventData, human } from "../lib/stats.js"

const URL = process.env.SLUICE_REDIS_URL ?? "redis://127.0.0.1:6379"
const IN_FLIGHT = 64

type Variant = "sluice" | "raw"

/** Runs `total` appends of `batch` events, `IN_FLIGHT` at a time; returns events per second. */
const drive = async (total: number, batch: number, append: (n: number) => Promise<unknown>): Promise<number> => {
  let sent = 0
  const started = performance.now()
  const worker = async () => {
    while (sent < total) {
      const n = Math.min(batch, total - sent)
      sent += n
      await append(n)
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker))
  return (total / (performance.now() - started)) * 1000
}

const data = eventData(0, 70)

const runSluice = (prefix: string, total: number, batch: number): Promise<number> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const log = yield* RedisLog.make({ url: URL, prefix, maxEvents: 10_000 })
    const inputs = (n: number) => Array.from({ length: n }, () => ({ topic: "bench", data }))
    const rate = yield* Effect.promise(() => drive(total, batch, (n) => Effect.runPromise(log.append(inputs(n)))))
    const head = yield* log.head
    if (head.seq !== total) throw new Error(`S10: the log's head is ${head.seq} after ${total} appended events`)
    return rate
  })))

const runRaw = async (key: string, total: number, batch: number): Promise<number> => {
  const client = createClient({ url: URL, RESP: 2, disableOfflineQueue: true })
  client.on("error", () => {})
  await client.connect()
  try {
    const xadd = () => client.sendCommand(["XADD", key, "MAXLEN", "~", "10000", "*", "t", "0", "p", "bench", "y", "message", "d", data])
    return await drive(total, batch, (n) => batch === 1 ? xadd() : Promise.all(Array.from({ length: n }, xadd)))
  } finally {
    client.destroy()
  }
}

const cleanup = async (keys: ReadonlyArray<string>): Promise<void> => {
  const client = createClient({ url: URL, RESP: 2 })
  client.on("error", () => {})
  await client.connect()
  try {
    await client.sendCommand(["DEL", ...keys])
  } finally {
    client.destroy()
  }
}

export const s10 = async (ctx: Ctx): Promise<Array<Row>> => {
  const total = ctx.smoke ? 2_000 : 100_000
  const rows: Array<Row> = []
  for (const batch of [1, 64]) {
    const keys: Array<string> = []
    const run = (variant: Variant): Promise<number> => {
      const id = `sluice-bench:${randomBytes(4).toString("hex")}`
      if (variant === "raw") {
        keys.push(id)
        return runRaw(id, total, batch)
      }
      keys.push(`{${id}}:meta`, `{${id}}:stream`)
      return runSluice(id, total, batch)
    }
    try {
      // Warm-up (JIT, script cache, connections) outside the timing.
      await run("sluice")
      await run("raw")
      const reps = await interleave(ctx, `S10 batch=${batch}`, ["sluice", "raw"] as const, (v) => run(v), (r) => `${human(r)} events/s`)
      rows.push(makeRow(ctx, {
        scenario: "S10",
        params: { events: total, batch, inFlight: IN_FLIGHT },
        metric: "appended events/s",
        better: "higher",
        baselineName: "node-redis pipelined XADD",
        sluice: reps.sluice,
        baseline: reps.raw,
        goal: ">= 0.5x",
        check: (r) => r.ratio >= 0.5
      }))
    } finally {
      await cleanup(keys)
    }
  }
  return rows
}
