/**
 * The script of one tab in the Chromium test of `SseClientShared` (bundled with esbuild): it
 * streams the `tabs` topic of the page's own origin through the shared client and records, on
 * `window.seen`, every item and status it got.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Effect from "effect/Effect"
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
}

const seen: Seen = { ids: [], resets: [], leading: 0, connects: 0, error: undefined }
;(window as unknown as { seen: Seen }).seen = seen

Effect.runFork(
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
