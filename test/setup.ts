import { addEqualityTesters } from "@effect/vitest"
import { afterEach } from "vitest"

addEqualityTesters()

// No client may crash the server: any uncaught exception or unhandled rejection while a test runs
// (an unhandled 'error' on a socket, say) fails that test, instead of killing the worker.
const escaped: Array<string> = []
process.on("uncaughtException", (error) => escaped.push(`uncaughtException: ${error?.stack ?? String(error)}`))
process.on("unhandledRejection", (reason) => escaped.push(`unhandledRejection: ${String(reason)}`))

afterEach(() => {
  if (escaped.length > 0) {
    const found = escaped.splice(0)
    throw new Error(`the process saw ${found.length} uncaught error(s):\n${found.join("\n")}`)
  }
})
