import { assert, describe, it } from "@effect/vitest"
import * as fc from "effect/FastCheck"
import { createParser, type EventSourceMessage } from "eventsource-parser"
import * as Event from "../src/Event.js"
import { frameOf, frameSizeOf } from "../src/internal/sse.js"
import * as Sse from "../src/Sse.js"

/** Everything a spec parser makes of a stream of text, fed in the given pieces. */
const parse = (...pieces: ReadonlyArray<string>) => {
  const events: Array<EventSourceMessage> = []
  const retries: Array<number> = []
  const comments: Array<string> = []
  const parser = createParser({
    onEvent: (event) => events.push(event),
    onRetry: (ms) => retries.push(ms),
    onComment: (comment) => comments.push(comment),
    onError: (error) => {
      throw error
    }
  })
  for (const piece of pieces) parser.feed(piece)
  return { events, retries, comments }
}

const event = (fields: Partial<Event.Event> & { readonly data: string }): Event.Event => ({
  id: { epoch: "k3x9q2", seq: 42 },
  topic: "t",
  type: "message",
  time: 0,
  ...fields
})

/** What the wire promises for data: CR and CRLF arrive as LF. */
const normalise = (data: string) => data.replace(/\r\n|\r/g, "\n")

describe("Sse encoder", () => {
  describe("golden frames", () => {
    it("data only", () => {
      assert.strictEqual(Sse.encode({ data: "hello" }), "data: hello\n\n")
      assert.strictEqual(Sse.encode({ data: "" }), "data: \n\n")
    })

    it("id, event and data in that order; message is omitted", () => {
      assert.strictEqual(Sse.encode({ id: "a-1", event: "order.created", data: "x" }), "id: a-1\nevent: order.created\ndata: x\n\n")
      assert.strictEqual(Sse.encode({ id: "a-1", event: "message", data: "x" }), "id: a-1\ndata: x\n\n")
      assert.strictEqual(Sse.encode({ event: "reset", data: "{}" }), "event: reset\ndata: {}\n\n")
    })

    it("splits LF, CR and CRLF into data lines", () => {
      assert.strictEqual(Sse.encode({ data: "a\nb" }), "data: a\ndata: b\n\n")
      assert.strictEqual(Sse.encode({ data: "a\rb" }), "data: a\ndata: b\n\n")
      assert.strictEqual(Sse.encode({ data: "a\r\nb" }), "data: a\ndata: b\n\n")
      assert.strictEqual(Sse.encode({ data: "a\n\rb" }), "data: a\ndata: \ndata: b\n\n")
      assert.strictEqual(Sse.encode({ data: "a\r\n\r\nb\n" }), "data: a\ndata: \ndata: b\ndata: \n\n")
      assert.strictEqual(Sse.encode({ data: "\n" }), "data: \ndata: \n\n")
    })

    it("keeps leading spaces and colons in data", () => {
      assert.strictEqual(Sse.encode({ data: " x: y " }), "data:  x: y \n\n")
    })

    it("strips control characters from id and event", () => {
      assert.strictEqual(Sse.encode({ id: "a-1\n\ndata: forged", event: "t\r\nid: 9", data: "x" }), "id: a-1data: forged\nevent: tid: 9\ndata: x\n\n")
      assert.strictEqual(Sse.encode({ id: "a\u0000-1\u007f", data: "x" }), "id: a-1\ndata: x\n\n")
    })

    it("comments, one line each, and retry", () => {
      assert.strictEqual(Sse.comment(""), ":\n\n")
      assert.strictEqual(Sse.comment("ok"), ": ok\n\n")
      assert.strictEqual(Sse.comment("a\r\nb\rc\u0000"), ": a\n: b\n: c\n\n")
      assert.strictEqual(Sse.retry(1500), "retry: 1500\n")
      assert.strictEqual(Sse.retry(1499.9), "retry: 1499\n")
      assert.strictEqual(Sse.retry(-5), "retry: 0\n")
    })

    it("encodeEvent renders id, type and data as UTF-8, encoded once per event object, handed out as a copy", () => {
      const e = event({ type: "order.created", data: "ünï\r\ncode" })
      const bytes = Sse.encodeEvent(e)
      assert.strictEqual(
        new TextDecoder().decode(bytes),
        "id: k3x9q2-42\nevent: order.created\ndata: ünï\ndata: code\n\n"
      )
      assert.strictEqual(frameOf(e), frameOf(e), "the frame is cached and shared inside")
      bytes.fill(0) // a caller that scribbles on its bytes
      assert.deepStrictEqual(Sse.encodeEvent(e), Uint8Array.from(frameOf(e)))
      assert.strictEqual(new TextDecoder().decode(frameOf(e)).slice(0, 4), "id: ", "the shared frame is untouched")
      assert.strictEqual(new TextDecoder().decode(Sse.encodeEvent(event({ data: "x" }))), "id: k3x9q2-42\ndata: x\n\n")
    })
  })

  describe("through a spec parser (eventsource-parser)", () => {
    it("opening bytes: retry and comment", () => {
      const parsed = parse(Sse.retry(2500) + Sse.comment("hello"))
      assert.deepStrictEqual(parsed.retries, [2500])
      assert.deepStrictEqual(parsed.comments, ["hello"])
      assert.deepStrictEqual(parsed.events, [])
    })

    const injections = [
      "x\nid: forged-1",
      "x\r\nevent: reset",
      "x\rretry: 1",
      "x\n\ndata: second event",
      "x\r\rid: 9-9\r\r",
      "\nevent: end\ndata: {}\n\n",
      "data: nested",
      ": comment?\nid: 1-1",
      "id: z-1",
      "\r\n\r\n\r\n"
    ]
    it.each(injections)("data %j stays data: one event, no forged field", (data) => {
      const frame = Sse.encode({ id: "a-1", event: "t", data })
      const { events, retries, comments } = parse(frame)
      assert.deepStrictEqual(events, [{ id: "a-1", event: "t", data: normalise(data) }])
      assert.deepStrictEqual(retries, [])
      assert.deepStrictEqual(comments, [])
    })

    it("control characters in id and event cannot start a field", () => {
      const { events, retries } = parse(Sse.encode({ id: "a-1\nretry: 1\n", event: "x\n\ndata: y", data: "z" }))
      assert.strictEqual(events.length, 1)
      assert.strictEqual(events[0]!.data, "z")
      assert.notInclude(events[0]!.id, "\n")
      assert.deepStrictEqual(retries, [])
    })

    const wireString = fc.string({
      unit: fc.oneof(
        fc.constantFrom("\r", "\n", "\r\n", ":", " ", "data:", "id:", "event:", "retry:", "\u2028", "\u0000", "é", "🎉"),
        fc.string({ unit: "grapheme", maxLength: 3 })
      ),
      maxLength: 40
    })

    it.prop("any data round-trips, with CR and CRLF as LF", [wireString], ([data]) => {
      const { events } = parse(Sse.encode({ id: "a-7", event: "t", data }))
      assert.deepStrictEqual(events, [{ id: "a-7", event: "t", data: normalise(data) }])
    })

    it.prop(
      "a stream of frames, cut anywhere, parses to the same events in order",
      [fc.array(wireString, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 })],
      ([datas, cuts]) => {
        const text = datas.map((data, i) => Sse.encode({ id: `e-${i}`, data })).join("")
        const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b)
        const pieces: Array<string> = []
        let from = 0
        for (const p of points) {
          pieces.push(text.slice(from, p))
          from = p
        }
        pieces.push(text.slice(from))
        const { events } = parse(...pieces)
        assert.deepStrictEqual(events, datas.map((data, i) => ({ id: `e-${i}`, event: undefined, data: normalise(data) })))
      }
    )

    it.prop("encodeEvent round-trips a log event", [wireString, fc.constantFrom("message", "a.b", "x:y/z")], ([data, type]) => {
      const e = event({ id: { epoch: "ab12", seq: 7 }, type, data })
      const { events } = parse(new TextDecoder().decode(Sse.encodeEvent(e)))
      assert.deepStrictEqual(events, [{ id: "ab12-7", event: type === "message" ? undefined : type, data: normalise(data) }])
    })
  })

  describe("frame size without encoding (the bus's byte accounting)", () => {
    const anyString = fc.string({
      unit: fc.oneof(
        fc.constantFrom("\r", "\n", "\r\n", "\u0000", "\u007f", "é", "🎉", "\u2028"),
        fc.string({ unit: "grapheme", maxLength: 3 })
      ),
      maxLength: 40
    })
    it.prop(
      "equals the encoded frame's byte length for any data, type and epoch",
      [anyString, fc.oneof(fc.constant("message"), anyString.filter((t) => t.length > 0)), fc.string({ maxLength: 12 }), fc.nat()],
      ([data, type, epoch, seq]) => {
        const fields = { id: { epoch, seq }, topic: "t", type, data, time: 1 }
        // Separate objects: one is measured first (no frame cached), the other is encoded.
        const size = frameSizeOf(Event.make(fields))
        assert.strictEqual(size, Sse.encodeEvent(Event.make(fields)).byteLength)
        assert.strictEqual(size, Sse.encodeEvent({ ...fields }).byteLength)
      }
    )

    it("Event.make keeps only the public fields visible", () => {
      const fields = { id: { epoch: "ab", seq: 3 }, topic: "t", type: "x", data: "d", time: 9 }
      const made = Event.make(fields)
      Sse.encodeEvent(made) // fills the private frame slot
      assert.strictEqual(JSON.stringify(made), JSON.stringify(fields))
      assert.deepStrictEqual({ ...made }, fields)
      assert.deepEqual(Object.keys(made).sort(), Object.keys(fields).sort())
    })
  })
})
