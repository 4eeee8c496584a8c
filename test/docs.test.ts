/**
 * Every `ts` code block in README.md and docs/ claims to run: each is written into its own module
 * under `.test-out/docs/` (inside the repository, so `node_modules` resolves) and type-checked with
 * the repository's compiler settings, `sluice` mapped to `src/` through `paths`.
 *
 * A block continues the ones before it in the same file: it gets their imports too. A
 * hidden `<!-- check: … -->` comment right before a block adds declarations it leaves to the reader
 * (e.g. a `userOf` function).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const ROOT = fileURLToPath(new URL("..", import.meta.url))
const OUT = Path.join(ROOT, ".test-out", "docs")

interface Block {
  readonly source: string
  readonly line: number
  readonly code: string
}

const BLOCK = /(?:<!-- check: ([\s\S]*?) -->\n)?```ts\n([\s\S]*?)```/g
const IMPORT = /^import [^\n]*\n/gm

/** The `ts` blocks of one markdown file, each with the imports of the blocks before it when it has none. */
const blocksOf = (file: string): Array<Block> => {
  const text = Fs.readFileSync(Path.join(ROOT, file), "utf8")
  const blocks: Array<Block> = []
  const imports = new Set<string>()
  for (const match of text.matchAll(BLOCK)) {
    const [, check, body] = match as unknown as [string, string | undefined, string]
    const own: ReadonlyArray<string> = body.match(IMPORT) ?? []
    const prelude = [...imports].filter((line) => !own.includes(line))
    own.forEach((line) => imports.add(line))
    const line = text.slice(0, match.index).split("\n").length
    blocks.push({ source: file, line, code: [...prelude, check ? `${check}\n` : "", body].join("") })
  }
  return blocks
}

const markdownFiles = (): Array<string> => [
  "README.md",
  ...Fs.readdirSync(Path.join(ROOT, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)
]

describe("code blocks in README.md and docs/", () => {
  it.live("type-check against src/", () =>
    Effect.gen(function*() {
      const blocks = markdownFiles().flatMap(blocksOf)
      assert.isAtLeast(blocks.length, 6, "the README's quick start and the docs' examples are found")
      Fs.rmSync(OUT, { recursive: true, force: true })
      Fs.mkdirSync(OUT, { recursive: true })
      const names = blocks.map((block, i) => {
        const name = `block${i}-${block.source.replace(/[^a-z]+/gi, "_")}-L${block.line}.ts`
        Fs.writeFileSync(Path.join(OUT, name), `// ${block.source}:${block.line}\n${block.code}`)
        return name
      })
      Fs.writeFileSync(Path.join(OUT, "tsconfig.json"), JSON.stringify({
        extends: "../../tsconfig.json",
        compilerOptions: {
          noUnusedLocals: false,
          paths: { "sluice": ["../../src/index.ts"], "sluice/*": ["../../src/*.ts"] }
        },
        include: names,
        exclude: []
      }))
      const tsc = Path.join(ROOT, "node_modules", "typescript", "bin", "tsc")
      const result = yield* Effect.async<{ code: number; output: string }>((resume) => {
        const child = ChildProcess.execFile(process.execPath, [tsc, "-p", Path.join(OUT, "tsconfig.json")], {
          cwd: ROOT,
          timeout: 180_000
        }, (error, stdout, stderr) => resume(Effect.succeed({ code: error ? 1 : 0, output: stdout + stderr })))
        return Effect.sync(() => child.kill("SIGKILL"))
      })
      assert.strictEqual(result.code, 0, `the blocks in ${OUT} do not type-check:\n${result.output}`)
    }), { timeout: 240_000 })
})
