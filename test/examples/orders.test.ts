import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import { program } from "../../examples/orders.js"

describe("examples/orders", () => {
  it.effect("the typed Order program logs the order it published", () =>
    Effect.gen(function*() {
      const lines: Array<unknown> = []
      const logger = Logger.make(({ message }) => lines.push(message))
      yield* program.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      assert.deepStrictEqual(lines, [["order 1: 42"]])
    }))
})
