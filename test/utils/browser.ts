/**
 * A real browser for the end-to-end tests: Debian's Chromium (`/usr/bin/chromium`, never a
 * downloaded one) driven by `playwright-core`, with a fresh profile per test, and helpers that read
 * the demo page's state from its DOM.
 */
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { type BrowserContext, chromium, type Page } from "playwright-core"

export const CHROMIUM = "/usr/bin/chromium"

/** Where screenshots go (ignored by git). */
export const OUTPUT = fileURLToPath(new URL("../../.test-out/browser/", import.meta.url))

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

/** Chromium with a fresh `--user-data-dir` (a temp folder), closed and removed by the scope. */
export const launch = Effect.acquireRelease(
  Effect.gen(function*() {
    if (!Fs.existsSync(CHROMIUM)) {
      return yield* Effect.dieMessage(
        `Chromium is not installed at ${CHROMIUM}: install it with \`apt-get install -y chromium\` (.ci/run does)`
      )
    }
    const profile = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sluice-chromium-"))
    const context = yield* Effect.promise(() =>
      chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS })
    )
    return { context, profile }
  }),
  ({ context, profile }) =>
    Effect.promise(() => context.close()).pipe(
      Effect.ensuring(Effect.sync(() => Fs.rmSync(profile, { recursive: true, force: true })))
    )
).pipe(Effect.map(({ context }): BrowserContext => context))

/** A new page in the context, closed by the scope. */
export const openPage = (context: BrowserContext) =>
  Effect.acquireRelease(Effect.promise(() => context.newPage()), (page) => Effect.promise(() => page.close()))

/** One row of the demo page's event list, oldest first. */
export interface Row {
  readonly kind: string
  readonly time: string
  readonly id: string
  readonly type: string
  readonly data: string
}

/** The demo page's rows, oldest first. */
export const rows = (page: Page): Effect.Effect<ReadonlyArray<Row>> =>
  Effect.promise(() =>
    page.$$eval("#log tr", (trs) =>
      trs.map((tr) => {
        const cells = (tr as HTMLTableRowElement).cells
        return {
          kind: tr.className,
          time: cells[0]?.textContent ?? "",
          id: cells[1]?.textContent ?? "",
          type: cells[2]?.textContent ?? "",
          data: cells[3]?.textContent ?? ""
        }
      }).reverse())
  )

/** The text of an element of the page. */
export const text = (page: Page, selector: string): Effect.Effect<string> =>
  Effect.promise(() => page.locator(selector).innerText())

/**
 * Saves a screenshot of the page under the test output folder: the whole page as PNG, or (a name
 * ending in `.jpg`) the viewport as a small JPEG.
 */
export const screenshot = (page: Page, name: string) =>
  Effect.promise(async () => {
    Fs.mkdirSync(OUTPUT, { recursive: true })
    const path = Path.join(OUTPUT, name)
    if (name.endsWith(".jpg")) await page.screenshot({ path, type: "jpeg", quality: 70 })
    else await page.screenshot({ path, fullPage: true })
    return path
  })
