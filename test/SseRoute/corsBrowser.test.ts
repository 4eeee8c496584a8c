/**
 * CORS in a real browser (Chromium): pages served from other origins open the route's stream. An
 * allowed origin streams with `withCredentials` (its cookie passes the `authorize` hook) and resumes
 * with `fetch` sending `Last-Event-ID` and `Authorization` (a preflight); without credentials the
 * hook refuses it; a disallowed origin gets nothing and no stream is opened.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import type { Page } from "playwright-core"
import * as SseRoute from "../../src/SseRoute.js"
import { launch, openPage } from "../utils/browser.js"
import { startServer } from "../utils/server.js"
import { waitForEffect } from "../utils/sse.js"

/** A page that opens `api`'s stream (with credentials when `creds=1`) and records what it sees. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>other origin</title><script>
"use strict";
const params = new URL(location.href).searchParams;
const api = params.get("api");
window.seen = { events: [], errors: 0, open: false, state: -1 };
const es = new EventSource(api + "/events?topic=t", { withCredentials: params.get("creds") === "1" });
es.onopen = () => { window.seen.open = true; };
es.onmessage = (e) => { window.seen.events.push({ id: e.lastEventId, data: e.data }); };
es.onerror = () => { window.seen.errors++; window.seen.state = es.readyState; };
window.resume = async (lastId) => {
  const response = await fetch(api + "/events?topic=t", {
    credentials: "include",
    headers: { "Last-Event-ID": lastId, "Authorization": "Bearer token" }
  });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!/data: [^\\n]*\\n\\n/.test(text)) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  await reader.cancel();
  return { status: response.status, text };
};
</script>`

/** A plain HTTP server on a free loopback port serving {@link PAGE}; its origin. */
const pageServer = Effect.acquireRelease(
  Effect.async<Http.Server>((resume) => {
    const server = Http.createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" })
      res.end(PAGE)
    })
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.async<void>((resume) => {
    server.closeAllConnections()
    server.close(() => resume(Effect.void))
  })
).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`))

interface Seen {
  readonly events: ReadonlyArray<{ readonly id: string; readonly data: string }>
  readonly errors: number
  readonly open: boolean
  readonly state: number
}

const seen = (page: Page) => Effect.promise(() => page.evaluate(() => (window as unknown as { seen: Seen }).seen))

/** Accepts the session cookie or the bearer token, refuses anything else with 401. */
const authorize: SseRoute.Authorize = (request) => {
  const cookie = request.headers["cookie"] ?? ""
  const bearer = request.headers["authorization"] === "Bearer token"
  return cookie.includes("session=ok") || bearer
    ? Effect.succeed({ all: true })
    : Effect.fail(new SseRoute.Unauthorized({ message: "no session" }))
}

describe("SseRoute CORS in Chromium", () => {
  it.scopedLive("allowed origin with a cookie streams and resumes; no credentials or another origin gets nothing", () =>
    Effect.gen(function*() {
      const allowed = yield* pageServer
      const other = yield* pageServer
      const { bus, route, url: api } = yield* startServer({
        route: { cors: { origins: [allowed], credentials: true }, authorize }
      })
      const context = yield* launch
      yield* Effect.promise(() => context.addCookies([{ name: "session", value: "ok", url: api }]))

      // Allowed origin, withCredentials: the cookie passes the hook and events arrive.
      const good = yield* openPage(context)
      yield* Effect.promise(() => good.goto(`${allowed}/?api=${encodeURIComponent(api)}&creds=1`))
      yield* waitForEffect("the allowed page's stream to open", seen(good), (s) => s.open, 15_000)
      const first = yield* bus.publish({ topic: "t", data: "one" })
      const second = yield* bus.publish({ topic: "t", data: "two" })
      const got = yield* waitForEffect("two events", seen(good), (s) => s.events.length >= 2, 15_000)
      const idOf = (e: typeof first) => `${e.id.epoch}-${e.id.seq}`
      assert.deepStrictEqual(got.events, [{ id: idOf(first), data: "one" }, { id: idOf(second), data: "two" }])

      // fetch with Last-Event-ID and Authorization (a preflight): resumes after the first event.
      const resumed = yield* Effect.promise(() =>
        good.evaluate((lastId) =>
          (window as unknown as { resume: (id: string) => Promise<{ status: number; text: string }> })
            .resume(lastId), idOf(first))
      )
      // The page could read the status and body at all only because the CORS headers allowed it.
      assert.strictEqual(resumed.status, 200)
      assert.include(resumed.text, `id: ${idOf(second)}\ndata: two\n\n`)
      assert.notInclude(resumed.text, "data: one")

      // Allowed origin without credentials: no cookie, the hook answers 401, the browser gives up.
      const anonymous = yield* openPage(context)
      yield* Effect.promise(() => anonymous.goto(`${allowed}/?api=${encodeURIComponent(api)}&creds=0`))
      const refused = yield* waitForEffect("the anonymous stream to fail", seen(anonymous), (s) => s.state === 2, 15_000)
      assert.isFalse(refused.open)

      // Another origin: 403 without CORS headers, nothing opened.
      const subscribed = (yield* bus.stats).resumes
      const evil = yield* openPage(context)
      yield* Effect.promise(() => evil.goto(`${other}/?api=${encodeURIComponent(api)}&creds=1`))
      const blocked = yield* waitForEffect("the other origin's stream to fail", seen(evil), (s) => s.state === 2, 15_000)
      yield* bus.publish({ topic: "t", data: "three" })
      yield* waitForEffect("the allowed page to get the third", seen(good), (s) => s.events.length === 3, 15_000)
      assert.isFalse(blocked.open)
      assert.deepStrictEqual((yield* seen(evil)).events, [])
      assert.deepStrictEqual((yield* bus.stats).resumes, subscribed, "no subscription opened for the other origin")
      assert.strictEqual(yield* route.connections, 1, "only the allowed page's stream")
    }), { timeout: 90_000 })
})
