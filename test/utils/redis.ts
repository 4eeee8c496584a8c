/**
 * Redis for tests: the shared server at 127.0.0.1:6379 (required: without it the Redis tests fail
 * with one line saying so), a key prefix per run, and private `redis-server` processes on other
 * ports for the tests that flush, stop or restart Redis.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as Net from "node:net"
import { createClient } from "redis"

/** The shared Redis the tests use (`.ci/run` starts it when it is down); `SLUICE_TEST_REDIS_URL` overrides it. */
export const REDIS_URL = process.env.SLUICE_TEST_REDIS_URL ?? "redis://127.0.0.1:6379"

/** A raw client for test set-up and inspection (replies in RESP2 shapes). */
export interface Admin {
  readonly send: (...args: Array<string>) => Promise<unknown>
  readonly close: () => Promise<void>
}

export const admin = async (url = REDIS_URL): Promise<Admin> => {
  const client = createClient({ url, RESP: 2, socket: { connectTimeout: 2_000, reconnectStrategy: false } })
  client.on("error", () => {})
  await client.connect()
  return {
    send: (...args) => client.sendCommand(args),
    close: async () => {
      client.destroy()
    }
  }
}

let reachable: Promise<void> | undefined

/**
 * For `beforeEach`: fails every test of the file (failed, not skipped) with one clear line when
 * Redis is not reachable. Redis is pinged once per file.
 */
export const requireRedis = (): Promise<void> => (reachable ??= ping())

const ping = async (): Promise<void> => {
  try {
    const a = await admin()
    await a.send("PING")
    await a.close()
  } catch (cause) {
    throw new Error(
      `Redis is not reachable at ${REDIS_URL} (${cause instanceof Error ? cause.message : String(cause)}): the Redis tests need it; .ci/run starts one`
    )
  }
}

/** A key prefix of its own for one test run. */
export const testPrefix = (name: string): string => `sluice-test:${name}:${process.pid}:${randomBytes(4).toString("hex")}`

/** Deletes every key of the logs with these prefixes (for `afterAll`). */
export const deletePrefixes = async (prefixes: ReadonlyArray<string>, url = REDIS_URL): Promise<void> => {
  const a = await admin(url)
  try {
    for (const prefix of prefixes) {
      let cursor = "0"
      do {
        const [next, keys] = (await a.send("SCAN", cursor, "MATCH", `{${prefix}}:*`, "COUNT", "1000")) as [string, Array<string>]
        if (keys.length > 0) await a.send("DEL", ...keys)
        cursor = next
      } while (cursor !== "0")
    }
  } finally {
    await a.close()
  }
}

/** A free loopback port (nothing listens on it once this returns). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

/** A private `redis-server` on its own port, which a test may flush, stop and start again. */
export interface PrivateRedis {
  readonly url: string
  readonly port: number
  readonly stop: Effect.Effect<void>
  readonly start: Effect.Effect<void>
}

const waitForPing = async (url: string): Promise<void> => {
  for (let i = 0; i < 100; i++) {
    try {
      const a = await admin(url)
      await a.send("PING")
      await a.close()
      return
    } catch {
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  throw new Error(`redis-server at ${url} did not start`)
}

/** Starts a private `redis-server` (no persistence) for the scope; it is killed when the scope closes. */
export const privateRedis: Effect.Effect<PrivateRedis, never, Scope.Scope> = Effect.gen(function*() {
  const port = yield* Effect.promise(freePort)
  const url = `redis://127.0.0.1:${port}`
  let child: ChildProcess | undefined
  const stop = Effect.promise(async () => {
    const running = child
    child = undefined
    if (running === undefined || running.exitCode !== null) return
    const exited = new Promise((r) => running.once("exit", r))
    running.kill("SIGKILL")
    await exited
  })
  const start = Effect.promise(async () => {
    child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore"
    })
    await waitForPing(url)
  })
  yield* Effect.acquireRelease(start, () => stop)
  return { url, port, stop, start }
})
