/**
 * The package as a user gets it: `npm pack` (which builds `dist/` through `prepare`), the tarball
 * installed into a fresh scratch project outside the repository next to the pinned Effect packages,
 * a plain `node` ESM script that serves and reads one stream, and a TypeScript file type-checked
 * against the published types with TypeScript's defaults for Node 20 (target ES2022 and its default
 * lib, strict, no `skipLibCheck`).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const ROOT = fileURLToPath(new URL("..", import.meta.url))
const FIXTURES = Path.join(ROOT, "test", "package")
const NPM = process.platform === "win32" ? "npm.cmd" : "npm"

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command to its end (bounded by `timeout`), collecting its output. */
const run = (command: string, args: ReadonlyArray<string>, cwd: string, timeout = 240_000) =>
  Effect.async<Run>((resume) => {
    const child = ChildProcess.execFile(command, args, { cwd, timeout, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) =>
      resume(Effect.succeed({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr })))
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const ok = (what: string, result: Run): Run => {
  assert.strictEqual(result.code, 0, `${what} failed:\n${result.stdout}\n${result.stderr}`)
  return result
}

const versionOf = (name: string): string =>
  JSON.parse(Fs.readFileSync(Path.join(ROOT, "node_modules", name, "package.json"), "utf8")).version

/** A scratch directory under the OS temp folder, removed by the scope. */
const scratch = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "sluice-pack-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

interface Packed {
  readonly filename: string
  readonly size: number
  readonly unpackedSize: number
  readonly files: ReadonlyArray<{ readonly path: string }>
}

describe("the npm package", () => {
  it.scopedLive("packs, installs into a fresh project, runs under plain node and type-checks", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const packed = ok("npm pack", yield* run(NPM, ["pack", "--json", "--pack-destination", dir], ROOT))
      const info = (JSON.parse(packed.stdout) as ReadonlyArray<Packed>)[0]!
      const files = info.files.map((f) => f.path).sort()
      console.log(`tarball ${info.filename}: ${info.size} bytes (${info.unpackedSize} unpacked), ${files.length} files`)
      console.log(files.join("\n"))
      for (const file of ["dist/index.js", "dist/index.d.ts", "dist/index.js.map", "dist/EventBus.d.ts", "package.json"]) {
        assert.include(files, file)
      }
      assert.isFalse(files.some((f) => f.startsWith("test/") || f.startsWith("bench/") || f.startsWith("examples/")))

      const app = Path.join(dir, "app")
      Fs.mkdirSync(app)
      Fs.writeFileSync(Path.join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }))
      const pinned = ["effect", "@effect/platform", "@effect/platform-node", "@types/node"].map((n) => `${n}@${versionOf(n)}`)
      ok("npm install", yield* run(NPM, [
        "install", "--no-audit", "--no-fund", "--prefer-offline", "--no-package-lock",
        Path.join(dir, info.filename), ...pinned
      ], app))

      Fs.copyFileSync(Path.join(FIXTURES, "consumer.mjs"), Path.join(app, "consumer.mjs"))
      const served = ok("node consumer.mjs", yield* run(process.execPath, ["consumer.mjs"], app, 60_000))
      const result = JSON.parse(served.stdout) as { status: number; contentType: string; text: string }
      assert.strictEqual(result.status, 200)
      assert.match(result.contentType, /^text\/event-stream/)
      assert.match(result.text, /event: tick\ndata: one\n\n/)
      assert.match(result.text, /event: tick\ndata: two\n\n/)

      Fs.copyFileSync(Path.join(FIXTURES, "consumer.ts"), Path.join(app, "consumer.ts"))
      Fs.writeFileSync(Path.join(app, "tsconfig.json"), JSON.stringify({
        compilerOptions: { module: "nodenext", target: "es2022", strict: true, noEmit: true },
        files: ["consumer.ts"]
      }))
      const tsc = Path.join(ROOT, "node_modules", "typescript", "bin", "tsc")
      ok("tsc in the scratch project", yield* run(process.execPath, [tsc, "-p", "tsconfig.json"], app, 120_000))
    }), { timeout: 600_000 })
})
