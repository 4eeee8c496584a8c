/**
 * The real demo server (what `npm start` runs, without the npm / tsx CLI wrappers) as a child
 * process on a free port, for tests that talk to it over loopback.
 */
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import { fileURLToPath } from "node:url"

const ROOT = fileURLToPath(new URL("../..", import.meta.url))

export interface Demo {
  readonly child: ChildProcess.ChildProcess
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  readonly output: () => string
}

/** Spawns the demo on PORT=0; the finalizer kills it whatever happened. */
export const spawnDemo = (env: Record<string, string> = {}) => Effect.acquireRelease(
  Effect.sync((): Demo => {
    const child = ChildProcess.spawn(process.execPath, ["--import", "tsx", "examples/demo-server.ts"], {
      cwd: ROOT,
      env: { ...process.env, PORT: "0", HOST: "127.0.0.1", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal }))
    )
    return { child, exited, output: () => output }
  }),
  ({ child }) =>
    Effect.sync(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    })
)

/** Resolves with the first value `check` returns (checked on every output chunk) or fails at the deadline. */
export const waitFor = <A>(
  what: string,
  millis: number,
  subscribe: (onChange: () => void) => () => void,
  check: () => A | undefined
): Effect.Effect<A, Error> =>
  Effect.async<A, Error>((resume) => {
    let done = false
    const finish = (effect: Effect.Effect<A, Error>) => {
      if (done) return
      done = true
      clearTimeout(timer)
      unsubscribe()
      resume(effect)
    }
    const onChange = () => {
      const value = check()
      if (value !== undefined) finish(Effect.succeed(value))
    }
    const timer = setTimeout(() => finish(Effect.fail(new Error(`timed out waiting for ${what}`))), millis)
    const unsubscribe = subscribe(onChange)
    onChange()
    return Effect.sync(() => {
      done = true
      clearTimeout(timer)
      unsubscribe()
    })
  })

/** Waits for the demo's "listening" line and returns its base URL. */
export const listening = (demo: Demo) =>
  waitFor("the listening line", 20_000, (f) => {
    demo.child.stdout!.on("data", f)
    return () => demo.child.stdout!.off("data", f)
  }, () => /sluice demo listening on (http:\/\/127\.0\.0\.1:(\d+))/.exec(demo.output())?.[1]).pipe(
    Effect.mapError((e) => new Error(`${e.message}; output so far:\n${demo.output()}`))
  )
