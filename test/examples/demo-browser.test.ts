/**
 * The demo page in a real browser (Debian's Chromium through `playwright-core`) against the real demo
 * server: the native `EventSource`, its own reconnects with `Last-Event-ID`, a reload, a restart of
 * the server, hostile data and a phone-sized viewport, all read from the page's DOM.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type { Page } from "playwright-core"
import { launch, openPage, type Row, rows, screenshot, text } from "../utils/browser.js"
import { listening, spawnDemo } from "../utils/demo.js"
import { waitForEffect } from "../utils/sse.js"

/** The demo with the ticker off and quick reconnects (a `retry:` of 0.5 to 0.6 s). */
const DEMO_ENV = { DEMO_TICK: "0", SLUICE_SSE_RETRY_MIN: "500 millis", SLUICE_SSE_RETRY_MAX: "600 millis" }

/** `POST /events`; answers the new event's id. */
const publish = (url: string, body: { topic: string; type?: string; data: string }) =>
  Effect.promise(async () => {
    const response = await fetch(`${url}/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body)
    })
    const answer = (await response.json()) as { id?: string }
    assert.strictEqual(response.status, 201, `publish ${JSON.stringify(body)}: ${JSON.stringify(answer)}`)
    return answer.id!
  })

/** `POST /demo/burst`: `count` events in one batch; answers their ids. */
const burst = (url: string, topic: string, count: number) =>
  Effect.promise(async () => {
    const response = await fetch(`${url}/demo/burst`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ topic, count })
    })
    const answer = (await response.json()) as { first: string; last: string }
    assert.strictEqual(response.status, 201, JSON.stringify(answer))
    const epoch = answer.first.slice(0, answer.first.lastIndexOf("-"))
    const seqOf = (id: string) => Number(id.slice(id.lastIndexOf("-") + 1))
    const first = seqOf(answer.first)
    assert.strictEqual(seqOf(answer.last), first + count - 1)
    return Array.from({ length: count }, (_, i) => `${epoch}-${first + i}`)
  })

const events = (page: Page) => Effect.map(rows(page), (all) => all.filter((r) => r.kind === "event"))

/** Opens the page and waits until its stream is open. */
const openDemo = (page: Page, url: string) =>
  Effect.gen(function*() {
    yield* Effect.promise(() => page.goto(`${url}/`))
    yield* waitForEffect("the page's stream to open", text(page, "#state"), (s) => s === "open", 15_000)
  })

/** The demo (with `env` over {@link DEMO_ENV}) and a Chromium page on it, its stream open. */
const demoPage = (env: Record<string, string> = {}, viewport?: { width: number; height: number }) =>
  Effect.gen(function*() {
    const demo = yield* spawnDemo({ ...DEMO_ENV, ...env })
    const url = yield* listening(demo)
    const page = yield* openPage(yield* launch)
    if (viewport) yield* Effect.promise(() => page.setViewportSize(viewport))
    yield* openDemo(page, url)
    return { demo, url, page }
  })

const waitEvents = (page: Page, what: string, done: (rows: ReadonlyArray<Row>) => boolean, millis = 15_000) =>
  waitForEffect(what, events(page), done, millis)

const median = (values: ReadonlyArray<number>): number => [...values].sort((a, b) => a - b)[values.length >> 1]!

describe("examples/demo-page in Chromium", () => {
  it.scopedLive("shows the events published through the publish route, in order, each with its time", () =>
    Effect.gen(function*() {
      const { page, url } = yield* demoPage({}, { width: 960, height: 900 })

      const ids: Array<string> = []
      const latencies: Array<number> = []
      for (let i = 0; i < 20; i++) {
        const started = Date.now()
        ids.push(yield* publish(url, { topic: "demo/chat", data: `message ${i}` }))
        yield* waitEvents(page, `event ${i}`, (r) => r.length > i)
        latencies.push(Date.now() - started)
      }
      const shown = yield* events(page)
      assert.deepStrictEqual(shown.map((r) => [r.id, r.type, r.data]), ids.map((id, i) => [id, "message", `message ${i}`]))
      for (const row of shown) assert.match(row.time, /^\d\d:\d\d:\d\d\.\d{3}$/)
      assert.strictEqual(yield* text(page, "#count"), "20")
      console.log(`publish -> shown in Chromium: median ${median(latencies)} ms, max ${Math.max(...latencies)} ms (20 events, POST + DOM poll)`)
      yield* waitForEffect("the stats", text(page, "#published"), (n) => n === "20")
      yield* screenshot(page, "demo-desktop.png")
      yield* screenshot(page, "demo-small.jpg")
    }))

  it.scopedLive("the server ends the stream 10 times; the browser reconnects by itself with no gap and no duplicate", () =>
    Effect.gen(function*() {
      const { page, url } = yield* demoPage({ SLUICE_SSE_MAX_EVENTS: "2", SLUICE_SSE_MAX_LIFETIME: "1 second" })

      // First bursts of 5 events in one batch (the demo's burst route) against a buffer of 2, each
      // once the page shows everything so far and its stream is open: each ends the stream as
      // overflow (unless a lifetime end got there first), until 5 overflow ends. Then one event at a
      // time under the 1 s lifetime until 5 lifetime ends. Both bounded in events.
      const ids: Array<string> = []
      const endsOf = (reason: string) =>
        Effect.map(rows(page), (all) => all.filter((r) => r.kind === "end" && JSON.parse(r.data).reason === reason).length)
      while ((yield* endsOf("overflow")) < 5) {
        assert.isBelow(ids.length, 75, `only ${yield* endsOf("overflow")} overflow ends after ${ids.length} events`)
        yield* waitEvents(page, "every event so far", (r) => r.length === ids.length)
        yield* waitForEffect("the stream to be open", text(page, "#state"), (s) => s === "open")
        ids.push(...(yield* burst(url, "demo/burst", 5)))
        yield* waitEvents(page, "the burst", (r) => r.length === ids.length)
      }
      const phase1 = ids.length
      while ((yield* endsOf("lifetime")) < 5) {
        assert.isBelow(ids.length - phase1, 60, `only ${yield* endsOf("lifetime")} lifetime ends`)
        ids.push(yield* publish(url, { topic: "demo/burst", data: "x" }))
        yield* Effect.sleep("300 millis")
      }
      const seq = (id: string) => Number(id.slice(id.lastIndexOf("-") + 1))
      ids.sort((a, b) => seq(a) - seq(b))
      const shown = yield* waitEvents(page, "every published event", (r) => r.length >= ids.length)
      assert.deepStrictEqual(shown.map((r) => r.id), ids, "every event once, in order")
      const reasons = (yield* rows(page)).filter((r) => r.kind === "end").map((r) => JSON.parse(r.data).reason as string)
      assert.isAtLeast(reasons.length, 10)
      const reconnects = yield* waitForEffect(
        "a reconnect after each end",
        Effect.map(text(page, "#reconnects"), Number),
        (n) => n >= reasons.length
      )
      assert.strictEqual(yield* text(page, "#resets"), "0")
      const stats = yield* Effect.promise(() => fetch(`${url}/stats`).then((r) => r.json()))
      assert.isAtLeast(stats.resumes.resumed, reasons.length, "each reconnect resumed from its Last-Event-ID")
      const count = (reason: string) => reasons.filter((r) => r === reason).length
      console.log(
        `${ids.length} events, ${reasons.length} ends (overflow ${count("overflow")}, lifetime ${count("lifetime")}), ` +
          `${reconnects} reconnects, 0 lost, 0 duplicated`
      )
    }), { timeout: 120_000 })

  it.scopedLive("a reload resumes from the last id with no gap", () =>
    Effect.gen(function*() {
      const { page, url } = yield* demoPage()
      const before = [yield* publish(url, { topic: "demo/a", data: "1" }), yield* publish(url, { topic: "demo/a", data: "2" })]
      yield* waitEvents(page, "the first two events", (r) => r.length === 2)

      // Away from the page (its stream closed), then back: what was published meanwhile is replayed.
      yield* Effect.promise(() => page.goto("about:blank"))
      const away = [yield* publish(url, { topic: "demo/a", data: "3" }), yield* publish(url, { topic: "demo/a", data: "4" })]
      yield* Effect.promise(() => page.goBack())
      const replayed = yield* waitEvents(page, "the events published while away", (r) => r.length >= 2)
      assert.deepStrictEqual(replayed.map((r) => r.id), away, "no gap, no duplicate of what the page had")
      assert.strictEqual(yield* text(page, "#resumed"), before[1])

      // A plain reload resumes from the last id too.
      yield* Effect.promise(() => page.reload())
      yield* waitForEffect("the reloaded stream to open", text(page, "#state"), (s) => s === "open")
      const after = yield* publish(url, { topic: "demo/a", data: "5" })
      const shown = yield* waitEvents(page, "the event after the reload", (r) => r.length >= 1)
      assert.deepStrictEqual(shown.map((r) => r.id), [after])
      assert.strictEqual(yield* text(page, "#resumed"), away[1])
      assert.strictEqual(yield* text(page, "#resets"), "0")
    }))

  it.scopedLive("a server restart with the memory log shows a reset with epoch-mismatch, then new events", () =>
    Effect.gen(function*() {
      const { demo: first, page, url } = yield* demoPage()
      const port = new URL(url).port
      const old = yield* publish(url, { topic: "demo/r", data: "before" })
      yield* waitEvents(page, "the event before the restart", (r) => r.length === 1)
      const oldEpoch = yield* waitForEffect("the epoch from /stats", text(page, "#epoch"), (e) => e !== "-")
      assert.strictEqual(oldEpoch, old.slice(0, old.lastIndexOf("-")))

      first.child.kill("SIGTERM")
      yield* Effect.promise(() => first.exited)
      const second = yield* spawnDemo({ ...DEMO_ENV, PORT: port })
      yield* listening(second)
      const reset = yield* waitForEffect("the reset", rows(page), (r) => r.some((row) => row.kind === "reset"), 20_000)
      const resetRow = reset.find((row) => row.kind === "reset")!
      assert.strictEqual(JSON.parse(resetRow.data).reason, "epoch-mismatch")
      assert.strictEqual(yield* text(page, "#reset-reason"), "epoch-mismatch")
      const fresh = yield* publish(url, { topic: "demo/r", data: "after" })
      const shown = yield* waitEvents(page, "the event after the restart", (r) => r.length === 2)
      assert.deepStrictEqual(shown.map((r) => r.id), [old, fresh])
      assert.notStrictEqual(fresh.slice(0, fresh.lastIndexOf("-")), oldEpoch, "a new epoch")
      yield* waitForEffect("the new epoch from /stats", text(page, "#epoch"), (e) => e !== oldEpoch)
    }), { timeout: 90_000 })

  it.scopedLive("hostile data is shown as text: no forged event, no markup", () =>
    Effect.gen(function*() {
      const { page, url } = yield* demoPage()
      const hostile = [
        "a\rb\r\nc\nd",
        "nul\u0000inside",
        "<script>window.__pwned = 1</script>",
        "<img src=x onerror=\"window.__pwned = 2\">",
        "line\u2028separator\u2029paragraph",
        "x\n\nevent: reset\ndata: {\"reason\":\"forged\"}\nid: 999-999\n",
        "</td></tr><tr class=\"reset\"><td>forged</td></tr>"
      ]
      const ids: Array<string> = []
      for (const data of hostile) ids.push(yield* publish(url, { topic: "demo/h", data }))
      const shown = yield* waitEvents(page, "every hostile event", (r) => r.length >= hostile.length)
      assert.deepStrictEqual(
        shown.map((r) => [r.id, r.type, r.data]),
        ids.map((id, i) => [id, "message", hostile[i]!.replace(/\r\n|\r/g, "\n")]),
        "each arrives as one event with its own id, its text intact (CR as LF, per the SSE line rules)"
      )
      const page$ = yield* Effect.promise(() =>
        page.evaluate(() => ({
          pwned: (window as unknown as { __pwned?: number }).__pwned,
          markup: document.querySelectorAll("#log script, #log img").length,
          resets: document.querySelectorAll("#log tr.reset").length,
          lastId: document.getElementById("last-id")?.textContent
        }))
      )
      assert.deepStrictEqual(page$, { pwned: undefined, markup: 0, resets: 0, lastId: ids.at(-1) })
    }))

  it.scopedLive("at 390 px nothing overflows the viewport (from the layout)", () =>
    Effect.gen(function*() {
      const { page, url } = yield* demoPage({}, { width: 390, height: 844 })
      yield* Effect.promise(async () => {
        await page.fill("#topics", "demo/a-rather-long-topic-name/with/many/levels demo/* orders/*")
        await page.fill("#types", "greeting-of-a-rather-long-type another-type")
        await page.click("#subscribe button[type=submit]")
      })
      yield* waitForEffect("the new stream to open", text(page, "#state"), (s) => s === "open")
      yield* publish(url, { topic: "demo/chat", type: "greeting-of-a-rather-long-type", data: "x".repeat(300) })
      yield* publish(url, { topic: "demo/chat", data: "a-long-word-".repeat(30) })
      yield* waitEvents(page, "two events", (r) => r.length === 2)
      yield* waitForEffect("the stats", text(page, "#epoch"), (e) => e !== "-")
      const overflow = yield* Effect.promise(() =>
        page.evaluate(() => {
          const width = document.documentElement.clientWidth
          const out: Array<string> = []
          for (const el of Array.from(document.querySelectorAll("body *"))) {
            const box = el.getBoundingClientRect()
            if (box.width > 0 && (box.right > width + 0.5 || box.left < -0.5)) {
              out.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} ${box.left.toFixed(1)}..${box.right.toFixed(1)}`)
            }
          }
          // Within a row, no two cells on the same line overlap, and no cell's text runs out of it.
          for (const tr of Array.from(document.querySelectorAll("#log tr"))) {
            const cells = Array.from((tr as HTMLTableRowElement).cells)
            cells.forEach((cell, i) => {
              if (cell.scrollWidth > cell.clientWidth + 1) out.push(`a cell of ${cell.textContent} spills out`)
              const a = cell.getBoundingClientRect()
              for (const other of cells.slice(i + 1)) {
                const b = other.getBoundingClientRect()
                const sameLine = a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5
                if (sameLine && a.left < b.right - 0.5 && b.left < a.right - 0.5) {
                  out.push(`cells ${cell.textContent} and ${other.textContent} overlap`)
                }
              }
            })
          }
          return { width, scrollWidth: document.documentElement.scrollWidth, out }
        })
      )
      assert.strictEqual(overflow.width, 390)
      assert.deepStrictEqual(overflow.out, [], "elements past the viewport's edge, or cells overlapping")
      assert.isAtMost(overflow.scrollWidth, 390, "no horizontal scroll")
      yield* screenshot(page, "demo-390.png")
    }))
})
