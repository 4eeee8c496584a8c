/**
 * The client's decoder (bytes of one connection to items) follows the WHATWG processing model:
 * mixed line ends, one leading BOM, comments, NUL in ids, empty ids, digits-only `retry`, unfinished
 * events dropped, a size limit; and it decodes any split of the same bytes into the same items.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SseClient from "../../src/SseClient.js"
import { makeCursor, type Decoded, Decoder, TOO_LARGE } from "../../src/internal/sseClientDecoder.js"

const utf8 = new TextEncoder()

/** Decodes `pieces` (strings are UTF-8 encoded) with a fresh decoder; returns the items and the cursor. */
const decode = (pieces: ReadonlyArray<string | Uint8Array>, options: { lastEventId?: string; maxEventSize?: number } = {}) => {
  const cursor = makeCursor(options.lastEventId)
  const decoder = new Decoder(cursor, options.maxEventSize ?? 1024 * 1024)
  const items: Array<Decoded> = []
  for (const piece of pieces) items.push(...decoder.feed(typeof piece === "string" ? utf8.encode(piece) : piece))
  return { items, cursor, decoder }
}

const message = (id: string, data: string, type = "message"): SseClient.Message => ({ _tag: "Message", id, type, data })

describe("SseClient decoder", () => {
  it("LF, CR and CRLF line ends mixed within one chunk", () => {
    const { items } = decode(["data: a\rdata: b\r\n\r\ndata: c\n\ndata: d\r\rid: x\r\nevent: t\ndata: e\r\n\n"])
    assert.deepStrictEqual(items, [message("", "a\nb"), message("", "c"), message("", "d"), message("x", "e", "t")])
  })

  it("strips one leading BOM, even split across chunks; a second BOM is part of the first line", () => {
    const bom = new Uint8Array([0xef, 0xbb, 0xbf])
    assert.deepStrictEqual(decode([bom, "data: 1\n\n"]).items, [message("", "1")])
    assert.deepStrictEqual(decode([bom.subarray(0, 1), bom.subarray(1), "data: 1\n\n"]).items, [message("", "1")])
    // WPT format-bom-2: the line "\uFEFFdata:1" is an unknown field.
    assert.deepStrictEqual(decode(["\uFEFF\uFEFFdata:1\n\ndata:2\n\ndata:3\n\n"]).items, [message("", "2"), message("", "3")])
    // A BOM that is not at the start stays in the data.
    assert.deepStrictEqual(decode(["data: 1\n\n", "data: \uFEFF2\n\n"]).items, [message("", "1"), message("", "\uFEFF2")])
  })

  it("ignores comments, unknown fields and events without data", () => {
    const { items } = decode([": hello\n:\nfoo: bar\nDATA: no\nevent: lonely\n\ndata\n\ndata:x\ndata:  y\n\n"])
    assert.deepStrictEqual(items, [message("", ""), message("", "x\n y")])
  })

  it("an id containing NUL is ignored; an empty id resets the cursor; an id-only block moves it", () => {
    const a = decode(["id: 7\ndata: a\n\nid: 8\u0000x\ndata: b\n\n"])
    assert.deepStrictEqual(a.items, [message("7", "a"), message("7", "b")])
    assert.strictEqual(a.cursor.id, "7")
    const b = decode(["id: 7\ndata: a\n\nid\ndata: b\n\nid: 41\n\n"], { lastEventId: "5" })
    assert.deepStrictEqual(b.items, [message("7", "a"), message("", "b")])
    assert.strictEqual(b.cursor.id, "41")
    assert.strictEqual(decode(["id: 7\ndata: a\n\nid:\n\n"]).cursor.id, "")
  })

  it("applies retry only when it is digits only", () => {
    for (const [line, expected] of [["retry: 250", 250], ["retry:0", 0], ["retry: 1e3", undefined], ["retry: -5", undefined], [
      "retry:  250",
      undefined
    ], ["retry: 25x", undefined], ["retry:", undefined]] as const) {
      assert.strictEqual(decode([`${line}\n\n`]).cursor.retry, expected, line)
    }
    assert.strictEqual(decode(["retry: 250\nretry: x\n"]).cursor.retry, 250, "an invalid retry keeps the last valid one")
  })

  it("drops an unfinished event at the end and does not record its id", () => {
    const { cursor, items } = decode(["id: a-1\ndata: done\n\nid: a-2\ndata: unfinished"], { lastEventId: "a-0" })
    assert.deepStrictEqual(items, [message("a-1", "done")])
    assert.strictEqual(cursor.id, "a-1")
  })

  it("an event over maxEventSize ends decoding after what came before it", () => {
    const { decoder, items } = decode(["data: ok\n\ndata: ", "x".repeat(600), "y".repeat(600), "\n\ndata: never\n\n"], {
      maxEventSize: 1000
    })
    assert.deepStrictEqual(items, [message("", "ok"), TOO_LARGE])
    assert.isTrue(decoder.tooLarge)
    assert.deepStrictEqual(decoder.feed(utf8.encode("data: more\n\n")), [])
    // Many data lines count together.
    assert.deepStrictEqual(decode(["data: 0123456789\n".repeat(100), "\n"], { maxEventSize: 1000 }).items, [TOO_LARGE])
    assert.deepStrictEqual(decode(["data: 0123456789\n".repeat(50), "\n"], { maxEventSize: 1000 }).items.length, 1)
  })

  it("invalid UTF-8 becomes U+FFFD, a character split across chunks is joined", () => {
    const euro = utf8.encode("data: €\n\n")
    assert.deepStrictEqual(decode([euro.subarray(0, 7), euro.subarray(7)]).items, [message("", "€")])
    assert.deepStrictEqual(decode([new Uint8Array([100, 97, 116, 97, 58, 0xff, 10, 10])]).items, [message("", "\uFFFD")])
  })

  describe("chunk-split invariance", () => {
    const recorded = record(1_000)
    const bytes = utf8.encode(recorded.text)
    const whole = decode([bytes])

    it(`the recorded stream (${1_000} varied events, every line-end mix) decodes to what was written`, () => {
      assert.deepStrictEqual(whole.items, recorded.expected)
      assert.strictEqual(whole.cursor.retry, recorded.retry)
      const ends = new Set(recorded.lineEnds)
      assert.deepStrictEqual([...ends].sort(), ["\n", "\r", "\r\n"])
    })

    it("1-byte chunks give identical items", () => {
      const pieces = Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1))
      const split = decode(pieces)
      assert.deepStrictEqual(split.items, whole.items)
      assert.deepStrictEqual(split.cursor, whole.cursor)
    })

    it("random chunkings (seeded) give identical items", () => {
      let seed = 99
      const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648
      for (let run = 0; run < 50; run++) {
        const pieces: Array<Uint8Array> = []
        for (let at = 0; at < bytes.length;) {
          const size = 1 + Math.floor(random() * (run % 2 === 0 ? 16 : 4096))
          pieces.push(bytes.subarray(at, at + size))
          at += size
        }
        assert.deepStrictEqual(decode(pieces).items, whole.items, `run ${run}`)
      }
    })

    it("every split point of the first 120 events gives identical items", () => {
      const part = utf8.encode(recorded.prefix(120))
      const expected = decode([part])
      assert.strictEqual(expected.items.length, 120)
      assert.isAbove(part.length, 6_000)
      const expectedJson = JSON.stringify([expected.items, expected.cursor])
      let splits = 0
      for (let at = 0; at <= part.length; at++) {
        const split = decode([part.subarray(0, at), part.subarray(at)])
        const json = JSON.stringify([split.items, split.cursor])
        if (json !== expectedJson) assert.deepStrictEqual(split.items, expected.items, `split at byte ${at}`)
        splits++
      }
      assert.strictEqual(splits, part.length + 1)
    })
  })
})

/**
 * A recorded stream of `count` varied events (seeded): a leading BOM, every line end (LF, CR, CRLF)
 * mixed, comments, `retry:` lines, ids and events without ids, id-only blocks, custom types,
 * multi-line, empty and non-ASCII data, fields without a space after the colon.
 */
function record(count: number) {
  let seed = 4242
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648
  const pick = <A>(xs: ReadonlyArray<A>): A => xs[Math.floor(random() * xs.length)]!
  const words = ["plain", "é", "€uro", "😀 emoji", "", " lead", "trail ", "a:b", "{\"json\":[1,2]}", "x".repeat(120)]
  const lineEnds: Array<string> = []
  const expected: Array<SseClient.Message> = []
  let cursor = ""
  let retry: number | undefined
  let previousEnd = ""
  const line = (text: string) => {
    // "\r" then an empty line ended by "\n" would read as one CRLF: never write that pair.
    const end = text === "" && previousEnd === "\r" ? pick(["\r", "\r\n"]) : pick(["\n", "\r", "\r\n"])
    lineEnds.push(end)
    previousEnd = end
    return text + end
  }
  let text = "\uFEFF"
  const starts: Array<number> = []
  for (let i = 0; i < count; i++) {
    starts.push(text.length)
    let frame = ""
    if (random() < 0.1) frame += line(`: comment ${i}`)
    if (random() < 0.05) {
      retry = Math.floor(random() * 5000)
      frame += line(`retry: ${retry}`)
    }
    if (random() < 0.05) {
      cursor = `skip-${i}`
      frame += line(`id: ${cursor}`) + line("")
    }
    const hasId = random() < 0.8
    if (hasId) {
      cursor = `e-${i}`
      frame += line(random() < 0.5 ? `id: ${cursor}` : `id:${cursor}`)
    }
    const type = random() < 0.3 ? pick(["order.created", "a/b", "x"]) : undefined
    if (type !== undefined) frame += line(`event: ${type}`)
    const lines = Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(words))
    for (const l of lines) frame += line(random() < 0.5 ? `data: ${l}` : `data:${l.startsWith(" ") ? " " + l : l}`)
    frame += line("")
    text += frame
    expected.push({ _tag: "Message", id: cursor, type: type ?? "message", data: lines.join("\n") })
  }
  return {
    text,
    expected,
    lineEnds,
    get retry() {
      return retry
    },
    prefix: (n: number) => text.slice(0, starts[n])
  }
}
