/**
 * The demo's `GET /metrics` output, after an open stream, a publish, an overflowed stream and a
 * refused topic, passes `promtool check metrics` (Debian's `prometheus` package; `.ci/run` installs
 * it when missing). Without promtool this test fails, saying how to install it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import { listening, spawnDemo } from "../utils/demo.js"
import { openStream, request } from "../utils/sse.js"

const PROMTOOL = "/usr/bin/promtool"

/** Runs `promtool check metrics` with `text` on stdin: its exit code and everything it printed. */
const promtool = (text: string) =>
  Effect.async<{ readonly code: number | null; readonly output: string }>((resume) => {
    const child = ChildProcess.spawn(PROMTOOL, ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] })
    let output = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    child.once("close", (code) => resume(Effect.succeed({ code, output })))
    child.stdin.end(text)
    return Effect.sync(() => child.kill("SIGKILL"))
  })

describe("examples/demo-server /metrics", () => {
  it.scopedLive("passes promtool check metrics", () =>
    Effect.gen(function*() {
      assert.isTrue(
        Fs.existsSync(PROMTOOL),
        `promtool is not installed at ${PROMTOOL}: install it with \`apt-get install -y prometheus\` (.ci/run does)`
      )
      const demo = yield* spawnDemo({ DEMO_TICK: "0", SLUICE_SSE_MAX_EVENTS: "2" })
      const url = yield* listening(demo)
      const stream = yield* Effect.promise(() => openStream(`${url}/events?topic=demo/*`))
      yield* Effect.addFinalizer(() => Effect.sync(() => stream.close()))
      const post = (path: string, body: unknown) =>
        Effect.promise(() =>
          request(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
        )
      assert.strictEqual((yield* post("/events", { topic: "demo/a", type: "note", data: { n: 1 } })).status, 201)
      assert.strictEqual((yield* post("/demo/burst", { topic: "demo/b", count: 5 })).status, 201) // overflows the stream
      assert.strictEqual((yield* Effect.promise(() => request(`${url}/events?topic=a%20b`))).status, 400)

      const metrics = yield* Effect.promise(() => request(`${url}/metrics`))
      assert.strictEqual(metrics.status, 200)
      assert.include(metrics.body, `sluice_subscriber_ends_total{bus="default",reason="overflow"} 1`)
      assert.include(metrics.body, `sluice_log_head{bus="default"} 6`)
      const { code, output } = yield* promtool(metrics.body)
      assert.strictEqual(output, "", metrics.body)
      assert.strictEqual(code, 0, metrics.body)
    }))
})
