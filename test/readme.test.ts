/**
 * The README's quick start as a newcomer runs it: its `ts` block, unchanged but for a free port,
 * run with `tsx` (`sluice` mapped to `src/`), and its browser line evaluated in a Chromium page of
 * the same origin, whose console must show the ticks with their ids.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { launch, openPage } from "./utils/browser.js"
import { waitForEffect } from "./utils/sse.js"

const ROOT = fileURLToPath(new URL("..", import.meta.url))
const OUT = Path.join(ROOT, ".test-out", "quickstart")

const readme = Fs.readFileSync(Path.join(ROOT, "README.md"), "utf8")
const section = readme.slice(readme.indexOf("## Quick start"))
const quickStart = /```ts\n([\s\S]*?)```/.exec(section)![1]!
const browserLine = /```js\n([\s\S]*?)```/.exec(section)![1]!.trim()

const freePort = Effect.async<number>((resume) => {
  const server = Net.createServer().listen(0, "127.0.0.1", () => {
    const port = (server.address() as Net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** Runs the quick start on `port` with tsx; killed by the scope. */
const runQuickStart = (port: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const main = quickStart.replace("port: 8080", `port: ${port}`)
      assert.notStrictEqual(main, quickStart, "the quick start binds port 8080")
      Fs.mkdirSync(OUT, { recursive: true })
      Fs.writeFileSync(Path.join(OUT, "main.ts"), main)
      Fs.writeFileSync(Path.join(OUT, "tsconfig.json"), JSON.stringify({
        extends: "../../tsconfig.json",
        compilerOptions: { paths: { "sluice": ["../../src/index.ts"], "sluice/*": ["../../src/*.ts"] } },
        include: ["main.ts"]
      }))
      const child = ChildProcess.spawn(process.execPath, ["--import", "tsx", "main.ts"], {
        cwd: OUT,
        env: { ...process.env, TSX_TSCONFIG_PATH: Path.join(OUT, "tsconfig.json") },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
      return { child, output: () => output }
    }),
    ({ child }) => Effect.sync(() => child.kill("SIGKILL"))
  )

describe("README", () => {
  it.scopedLive("the quick start serves ticks that its browser line shows", () =>
    Effect.gen(function*() {
      assert.include(quickStart, `host: "127.0.0.1"`, "the quick start binds loopback")
      const port = yield* freePort
      const app = yield* runQuickStart(port)
      const url = `http://127.0.0.1:${port}`
      yield* waitForEffect(
        "the quick start to listen",
        Effect.promise(() => fetch(`${url}/stats`).then((r) => r.status, () => 0)),
        (status) => status === 200,
        30_000
      ).pipe(Effect.catchAllDefect((e) => Effect.dieMessage(`${String(e)}; output:\n${app.output()}`)))

      const page = yield* openPage(yield* launch)
      const logged: Array<string> = []
      page.on("console", (message) => {
        if (message.type() === "log") logged.push(message.text())
      })
      yield* Effect.promise(() => page.goto(`${url}/stats`)) // any page of the same origin
      yield* Effect.promise(() => page.evaluate(browserLine))
      const lines = yield* waitForEffect("two ticks in the console", Effect.sync(() => [...logged]), (l) => l.length >= 2, 10_000)
      // The quick start's typed `Clock` topic encodes `{ at: Date }` as JSON with an ISO time.
      const ticks = lines.map((line) => /^([0-9a-z]+)-(\d+) \{"at":"(\d{4}-\d\d-\d\dT[\d:.]+Z)"\}$/.exec(line))
      assert.isTrue(ticks.every((m) => m !== null), `each line is '<id> {"at":"<ISO time>"}': ${JSON.stringify(lines)}`)
      const seqs = ticks.map((m) => Number(m![2]))
      assert.strictEqual(seqs[1], seqs[0]! + 1, "consecutive ticks")
    }), { timeout: 90_000 })
})
