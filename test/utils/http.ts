import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { type ReadResponse, request } from "./sse.js"

export const json = { "content-type": "application/json" }

/** `POST /events` with a fresh connection, read to the end. */
export const post = (url: string, body: string | ReadonlyArray<string>, headers: Record<string, string> = json) =>
  Effect.promise(() => request(`${url}/events`, { method: "POST", headers, body }))

/** A refusal: the status, a JSON `{ error, message }` body, nothing that looks like a stack. */
export const assertRefused = (res: ReadResponse, status: number, error: string) => {
  assert.strictEqual(res.status, status, res.body)
  assert.match(String(res.headers["content-type"]), /^application\/json/)
  const body = JSON.parse(res.body)
  assert.deepStrictEqual(Object.keys(body).sort(), ["error", "message"])
  assert.strictEqual(body.error, error)
  assert.isString(body.message)
  assert.notMatch(res.body, /\n\s+at |\.ts:\d|\.js:\d|stack/i, "no stack trace")
}
