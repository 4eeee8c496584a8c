/**
 * A tiny request/response protocol over the Node IPC channel between the driver (bench/run.ts) and
 * its child processes (server, load generators, in-process micro-benchmarks).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

export const ROOT = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../..")

interface Request {
  readonly id: number
  readonly cmd: string
  readonly args: unknown
}

type Reply = { readonly id: number; readonly ok: true; readonly result: unknown } | {
  readonly id: number
  readonly ok: false
  readonly error: string
}

type Handlers = Record<string, (args: any) => unknown>

/** Child side: answers the driver's commands; `exit` ends the process (so `--cpu-prof` is written). */
export const serveIpc = (handlers: Handlers, ready: Record<string, unknown> = {}): void => {
  if (process.send === undefined) throw new Error("this script is a child of bench/run.ts (no IPC channel)")
  process.on("message", (message: Request) => {
    if (message.cmd === "exit") {
      process.send!({ id: message.id, ok: true, result: null } satisfies Reply, () => process.exit(0))
      return
    }
    const handler = handlers[message.cmd]
    if (handler === undefined) {
      process.send!({ id: message.id, ok: false, error: `unknown command ${message.cmd}` } satisfies Reply)
      return
    }
    Promise.resolve()
      .then(() => handler(message.args))
      .then(
        (result) => process.send!({ id: message.id, ok: true, result: result ?? null } satisfies Reply),
        (error: unknown) =>
          process.send!({
            id: message.id,
            ok: false,
            error: error instanceof Error ? error.stack ?? error.message : String(error)
          } satisfies Reply)
      )
  })
  // The driver going away must not leave load running.
  process.on("disconnect", () => process.exit(0))
  process.send({ ready: true, ...ready })
}

export interface Child {
  readonly name: string
  readonly info: Record<string, unknown>
  readonly call: <A = any>(cmd: string, args?: unknown, timeoutMs?: number) => Promise<A>
  /** Asks the child to exit and waits (kills it after a grace period). */
  readonly stop: () => Promise<void>
  readonly process: ChildProcess
}

export interface SpawnOptions {
  /** CPU list for `taskset -c` (ignored when taskset is missing or pinning is off). */
  readonly cpu?: string | undefined
  readonly gc?: boolean | undefined
  /** Extra node flags (e.g. `--cpu-prof`). */
  readonly nodeFlags?: ReadonlyArray<string> | undefined
  readonly startTimeoutMs?: number | undefined
}

const hasTaskset = existsSync("/usr/bin/taskset") || existsSync("/bin/taskset")

/** Spawns `node [--expose-gc] --import tsx <script> <json config>` with an IPC channel. */
export const spawnChild = (
  name: string,
  script: string,
  config: unknown,
  options: SpawnOptions = {}
): Promise<Child> => {
  const nodeArgs = [
    ...(options.gc === false ? [] : ["--expose-gc"]),
    ...(options.nodeFlags ?? []),
    "--import",
    "tsx",
    Path.join(ROOT, "bench", script),
    JSON.stringify(config)
  ]
  const pinned = options.cpu !== undefined && hasTaskset
  const child = spawn(
    pinned ? "taskset" : process.execPath,
    pinned ? ["-c", options.cpu!, process.execPath, ...nodeArgs] : nodeArgs,
    { cwd: ROOT, stdio: ["ignore", "inherit", "inherit", "ipc"], env: { ...process.env, NODE_OPTIONS: "" } }
  )
  let nextId = 1
  const pending = new Map<number, { resolve: (a: any) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>()
  let exited = false
  const failAll = (why: string) => {
    for (const [, p] of pending) {
      clearTimeout(p.timer)
      p.reject(new Error(`${name}: ${why}`))
    }
    pending.clear()
  }
  child.on("exit", (code, signal) => {
    exited = true
    failAll(`exited (code ${code}, signal ${signal})`)
  })
  return new Promise<Child>((resolve, reject) => {
    const startTimer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${name}: did not start within ${options.startTimeoutMs ?? 30_000} ms`))
    }, options.startTimeoutMs ?? 30_000)
    child.once("exit", (code) => {
      clearTimeout(startTimer)
      reject(new Error(`${name}: exited during start (code ${code})`))
    })
    child.on("message", (message: any) => {
      if (message !== null && typeof message === "object" && message.ready === true) {
        clearTimeout(startTimer)
        const { ready: _ready, ...info } = message
        resolve({
          name,
          info,
          process: child,
          call: <A>(cmd: string, args?: unknown, timeoutMs = 120_000) =>
            new Promise<A>((res, rej) => {
              if (exited) return rej(new Error(`${name}: already exited`))
              const id = nextId++
              const timer = setTimeout(() => {
                pending.delete(id)
                rej(new Error(`${name}: ${cmd} timed out after ${timeoutMs} ms`))
              }, timeoutMs)
              pending.set(id, { resolve: res, reject: rej, timer })
              child.send({ id, cmd, args: args ?? {} } satisfies Request)
            }),
          stop: () =>
            new Promise<void>((res) => {
              if (exited) return res()
              const kill = setTimeout(() => child.kill("SIGKILL"), 10_000)
              child.once("exit", () => {
                clearTimeout(kill)
                res()
              })
              try {
                child.send({ id: nextId++, cmd: "exit", args: {} } satisfies Request)
              } catch {
                child.kill("SIGKILL")
              }
            })
        })
        return
      }
      const reply = message as Reply
      const p = pending.get(reply.id)
      if (p === undefined) return
      pending.delete(reply.id)
      clearTimeout(p.timer)
      if (reply.ok) p.resolve(reply.result)
      else p.reject(new Error(`${name}: ${reply.error}`))
    })
  })
}

/** The JSON config a child was started with. */
export const childConfig = <A>(): A => JSON.parse(process.argv[2] ?? "{}") as A

/** Wall time in ms comparable across processes on one machine. */
export const wallNow = (): number => performance.timeOrigin + performance.now()
