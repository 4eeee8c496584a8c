/**
 * The tab-side bookkeeping of `SseClientShared` (the `Tracker`), driven directly with the envelopes
 * leaders broadcast: duplicates across a leader change are dropped, resets pass through and move the
 * cursor, a new leader that resumed ahead of this tab is held back until the old leader's last items
 * arrive (or, after the handover timeout, released behind a `leader-changed` reset).
 */
import { assert, describe, it } from "@effect/vitest"
import type * as SseClient from "../../src/SseClient.js"
import { keyOf, Tracker } from "../../src/internal/sseClientShared.js"

const message = (id: string, fresh = true) => ({ item: { _tag: "Message", id, type: "message", data: id } as SseClient.Item, fresh })
const envelope = (term: string, from: string, ...ids: Array<string>) => ({ term, from, entries: ids.map((id) => message(id)) })
const ids = (items: ReadonlyArray<SseClient.Item>) => items.map((i) => i._tag === "Message" ? i.id : `reset ${i.reason} ${i.head}`)

describe("SseClientShared Tracker", () => {
  it("drops what a new leader repeats and keeps the cursor", () => {
    const tracker = new Tracker(undefined)
    assert.deepStrictEqual(ids(tracker.receive(envelope("a", "", "e-1", "e-2", "e-3"))), ["e-1", "e-2", "e-3"])
    // The new leader had seen only e-2 when it took over: it repeats e-3.
    assert.deepStrictEqual(ids(tracker.receive(envelope("b", "e-2", "e-3", "e-4"))), ["e-4"])
    assert.strictEqual(tracker.dropped, 1)
    assert.strictEqual(tracker.id, "e-4")
  })

  it("holds a leader that resumed ahead until the old leader's items arrive, then merges without loss", () => {
    const tracker = new Tracker("e-0")
    assert.deepStrictEqual(ids(tracker.receive(envelope("a", "e-0", "e-1"))), ["e-1"])
    // The new leader (term b) saw e-3 from a; a's e-2 and e-3 reach this tab after b's first items.
    assert.deepStrictEqual(ids(tracker.receive(envelope("b", "e-3", "e-4"))), [])
    assert.deepStrictEqual(tracker.waiting, ["b"])
    assert.deepStrictEqual(ids(tracker.receive(envelope("b", "e-3", "e-5"))), [])
    assert.deepStrictEqual(ids(tracker.receive(envelope("a", "e-0", "e-2", "e-3"))), ["e-2", "e-3", "e-4", "e-5"])
    assert.deepStrictEqual(tracker.waiting, [])
    assert.deepStrictEqual(ids(tracker.receive(envelope("b", "e-3", "e-6"))), ["e-6"])
  })

  it("gives up waiting after the handover timeout with a leader-changed reset", () => {
    const tracker = new Tracker("e-1")
    assert.deepStrictEqual(ids(tracker.receive(envelope("b", "e-5", "e-6"))), [])
    assert.deepStrictEqual(ids(tracker.expire("b")), ["reset leader-changed e-5", "e-6"])
    assert.deepStrictEqual(ids(tracker.expire("b")), [], "expiring twice gives nothing")
    assert.deepStrictEqual(ids(tracker.receive(envelope("a", "e-0", "e-2"))), [], "the old leader's late item is a duplicate now")
  })

  it("passes resets through (even backwards or to another epoch) and keeps id-less messages", () => {
    const tracker = new Tracker("e-9")
    const reset: SseClient.Item = { _tag: "Reset", reason: "future", head: "e-3", message: undefined }
    const out = tracker.receive({ term: "a", from: "e-9", entries: [{ item: reset, fresh: true }, message("e-4"), message("e-4", false)] })
    assert.deepStrictEqual(ids(out), ["reset future e-3", "e-4", "e-4"])
    assert.deepStrictEqual(ids(tracker.receive(envelope("a", "e-9", "f-1"))), ["f-1"], "another epoch is taken")
    assert.deepStrictEqual(ids(tracker.receive(envelope("b", "x", "x", "y"))), ["x", "y"], "ids that are not sluice's are not compared")
  })

  it("names the lock after the absolute URL and the sorted topics", () => {
    assert.strictEqual(keyOf("http://a.test/events", { topics: ["b", "a"] }), keyOf(new URL("http://a.test/events"), { topics: ["a", "b"] }))
    assert.notStrictEqual(keyOf("http://a.test/events", { topics: ["a"] }), keyOf("http://a.test/events", { topics: ["b"] }))
    assert.strictEqual(keyOf("http://a.test/events", { key: "mine" }), "mine")
  })
})
