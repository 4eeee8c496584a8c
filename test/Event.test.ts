import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as fc from "effect/FastCheck"
import * as Event from "../src/Event.js"

const epochArb = fc.stringMatching(/^[0-9a-z]{1,32}$/)
const seqArb = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })

describe("Event", () => {
  describe("formatId / parseId", () => {
    it("renders <epoch>-<seq>", () => {
      assert.strictEqual(Event.formatId({ epoch: "k3x9q2", seq: 42 }), "k3x9q2-42")
      assert.strictEqual(Event.formatId({ epoch: "0", seq: 0 }), "0-0")
    })

    it.prop("round-trips every valid id", [epochArb, seqArb], ([epoch, seq]) => {
      const parsed = Event.parseId(Event.formatId({ epoch, seq }))
      assert.deepStrictEqual(parsed, Either.right({ epoch, seq }))
    })

    it("accepts the bounds", () => {
      assert.deepStrictEqual(Event.parseId("a-0"), Either.right({ epoch: "a", seq: 0 }))
      assert.deepStrictEqual(
        Event.parseId(`${"z".repeat(32)}-${Number.MAX_SAFE_INTEGER}`),
        Either.right({ epoch: "z".repeat(32), seq: Number.MAX_SAFE_INTEGER })
      )
    })

    const malformed = [
      "",
      "-1",
      "1e3",
      "1".repeat(30),
      `abc-${"1".repeat(30)}`,
      "abc",
      "x-01",
      "X-1",
      "ABC-12",
      "abc-",
      "-",
      "a-1-2",
      " a-1",
      "a-1 ",
      "a-+1",
      "a--1",
      "a-1.0",
      "a-1e3",
      "a-0x1",
      "a_b-1",
      "a:b-1",
      `${"a".repeat(33)}-1`,
      "a-9007199254740992",
      "a-1\n",
      "a-１"
    ]
    it.each(malformed)("rejects %j as a value, never a throw", (input) => {
      const parsed = Event.parseId(input)
      assert.isTrue(Either.isLeft(parsed))
      if (Either.isLeft(parsed)) {
        assert.strictEqual(parsed.left._tag, "InvalidCursor")
        assert.strictEqual(parsed.left.input, input.slice(0, 64))
        assert.isAbove(parsed.left.message.length, 0)
      }
    })

    it("truncates a long input in the error", () => {
      const parsed = Event.parseId("x".repeat(10_000))
      assert.isTrue(Either.isLeft(parsed) && parsed.left.input.length === 64)
    })

    it.prop("never throws on arbitrary strings", [fc.string({ unit: "binary" })], ([input]) => {
      const parsed = Event.parseId(input)
      if (Either.isRight(parsed)) assert.strictEqual(Event.formatId(parsed.right), input)
    })
  })

  describe("validateTopic", () => {
    it("accepts 1-200 characters of A-Z a-z 0-9 . _ ~ / -", () => {
      for (const topic of ["a", "orders/42", "A-Z_a.z~0/9", "/", "a/", "x".repeat(200)]) {
        assert.isUndefined(Event.validateTopic(topic), topic)
      }
    })

    it("refuses everything else", () => {
      for (const topic of ["", "x".repeat(201), "a b", "a*", "*", "a\nb", "a\rb", "a\u0000", "é", "a:b", "a?b", 42, null]) {
        assert.isString(Event.validateTopic(topic), JSON.stringify(topic))
      }
    })
  })

  describe("validatePattern", () => {
    it("accepts topics, prefix patterns and *", () => {
      for (const pattern of ["a", "orders/*", "*", "a*", `${"x".repeat(200)}*`]) {
        assert.isUndefined(Event.validatePattern(pattern), pattern)
      }
    })

    it("refuses empty, inner or doubled stars and bad characters", () => {
      for (const pattern of ["", "**", "a*b", "*a", "a b*", "a\n*", "x".repeat(201), 1]) {
        assert.isString(Event.validatePattern(pattern), JSON.stringify(pattern))
      }
    })
  })

  describe("validateType", () => {
    it("accepts 1-128 characters of A-Z a-z 0-9 . _ ~ : / -", () => {
      for (const type of ["message", "order.created", "a:b/c~d_e-f", "t".repeat(128)]) {
        assert.isUndefined(Event.validateType(type), type)
      }
    })

    it("refuses the reserved types and anything that could forge a field", () => {
      for (const type of ["reset", "end", "", "t".repeat(129), "a b", "a\nb", "a\rdata: x", "é", undefined]) {
        assert.isString(Event.validateType(type), JSON.stringify(type))
      }
      assert.include(Event.validateType("reset"), "reserved")
      assert.include(Event.validateType("end"), "reserved")
    })
  })

  describe("matchTopics", () => {
    it("matches everything when there are no patterns or a bare *", () => {
      assert.isUndefined(Event.matchTopics([]))
      assert.isUndefined(Event.matchTopics(["*"]))
      assert.isUndefined(Event.matchTopics(["a", "*"]))
    })

    it("matches exact topics", () => {
      const one = Event.matchTopics(["a/1"])!
      assert.isTrue(one("a/1"))
      assert.isFalse(one("a/10"))
      assert.isFalse(one("a"))
      const two = Event.matchTopics(["a/1", "b"])!
      assert.isTrue(two("a/1") && two("b"))
      assert.isFalse(two("b/1"))
    })

    it("matches prefixes", () => {
      const match = Event.matchTopics(["a/*", "exact"])!
      for (const topic of ["a/", "a/1", "a/1/2", "exact"]) assert.isTrue(match(topic), topic)
      for (const topic of ["a", "ab/1", "b/a/1", "exact2", "A/1"]) assert.isFalse(match(topic), topic)
      const bare = Event.matchTopics(["ord*"])!
      assert.isTrue(bare("orders") && bare("ord") && bare("ord/1"))
      assert.isFalse(bare("or"))
    })
  })
})
