/**
 * The script of one tab in the Chromium test of `SseClientShared` (bundled with esbuild): it
 * streams the `tabs` topic of the page's own origin through the shared client and records, on
 * `window.seen`, every item and status it got.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as SseClientShared from "../../src/SseClientShared.js"

/** What the test reads from each tab. */
export interface Seen {
  /** Message ids in arrival order. */
  readonly ids: Array<string>
  readonly resets: Array<string>
  /** Times this tab took the connection over. */
  leading: number
  connects: number
  error: string | undefined
  /** Set once the stream's fiber ended after `window.stop()`. */
  stopped: boolean
}

const seen: Seen = { ids: [], resets: [], leading: 0, connects: 0, error: undefined, stopped: false }
;(window as unknown as { seen: Seen }).seen = seen

const fiber = Effect.runFork(
  SseClientShared.streamWithStatus("/events", { topics: ["tabs"], heartbeat: "1 second" }).pipe(
    Stream.runForEach((item) =>
      Effect.sync(() => {
        if (item._tag === "Message") seen.ids.push(item.id)
        else if (item._tag === "Reset") seen.resets.push(`${item.reason} ${item.head}`)
        else if (item._tag === "Leading") seen.leading++
        else if (item._tag === "Connected") seen.connects++
      })
    ),
    Effect.provide(FetchHttpClient.layer),
    Effect.catchAllCause((cause) => Effect.sync(() => (seen.error = String(cause))))
  )
)
;(window as unknown as { stop: () => void }).stop = () => {
  Effect.runFork(Effect.andThen(Fiber.interrupt(fiber), () => (seen.stopped = true)))
}
