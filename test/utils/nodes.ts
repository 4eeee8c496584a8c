/**
 * sluice nodes as separate processes: the demo server (`examples/demo-server.ts`) on the Redis log,
 * each with its own HTTP server on a free loopback port.
 */
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import { fileURLToPath } from "node:url"
import { REDIS_URL } from "./redis.js"

const ROOT = fileURLToPath(new URL("../..", import.meta.url))

export interface Node {
  readonly index: number
  readonly url: string
  readonly port: number
  readonly child: ChildProcess.ChildProcess
  alive: boolean
}

/**
 * Starts one demo server on the Redis log under `prefix`; `env` adds `SLUICE_*` settings. It is
 * SIGKILLed when the scope closes.
 */
export const startNode = (index: number, options: {
  readonly prefix: string
  readonly redisUrl?: string
  readonly env?: Record<string, string>
}) =>
  Effect.acquireRelease(
    Effect.async<Node, Error>((resume) => {
      const child = ChildProcess.spawn(process.execPath, ["--import", "tsx", "examples/demo-server.ts"], {
        cwd: ROOT,
        env: {
          ...process.env,
          PORT: "0",
          HOST: "127.0.0.1",
          DEMO_TICK: "0",
          SLUICE_REDIS_URL: options.redisUrl ?? REDIS_URL,
          SLUICE_REDIS_PREFIX: options.prefix,
          SLUICE_REDIS_MAX_EVENTS: "100000",
          SLUICE_SSE_MAX_REPLAY: "100000",
          ...options.env
        },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      const onData = (chunk: string) => {
        output += chunk
        const match = /listening on (http:\/\/[^\s]+)/.exec(output)
        if (match !== null) resume(Effect.succeed({ index, url: match[1]!, port: Number(new URL(match[1]!).port), child, alive: true }))
      }
      child.stdout.setEncoding("utf8").on("data", onData)
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
      child.once("exit", (code) => resume(Effect.fail(new Error(`node ${index} exited (${code}): ${output}`))))
    }),
    (node) => Effect.sync(() => node.child.kill("SIGKILL"))
  )
