/**
 * The route's two transports behind one face, so one behaviour suite runs against both: Node (a
 * real server on loopback, read over a real socket) and portable (the route as a web handler, read
 * from the `Response` body).
 */
import * as HttpApp from "@effect/platform/HttpApp"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as EventBus from "../../src/EventBus.js"
import * as SseRoute from "../../src/SseRoute.js"
import { startServer } from "./server.js"
import { openStream, parseSse, type ParsedStream } from "./sse.js"

/** An open stream, read as it arrives. */
export interface Reader {
  readonly status: number
  readonly text: () => string
  readonly ended: () => boolean
  readonly parsed: () => ParsedStream
  readonly close: () => void
}

export interface Harness {
  readonly bus: EventBus.EventBus["Type"]
  readonly route: SseRoute.SseRoute["Type"]
  readonly open: (path: string, headers?: Record<string, string>) => Effect.Effect<Reader, never, Scope.Scope>
}

export interface Transport {
  readonly name: string
  readonly start: (
    options: { readonly route?: SseRoute.Options; readonly bus?: EventBus.Options }
  ) => Effect.Effect<Harness, never, Scope.Scope>
}

const node: Transport = {
  name: "node",
  start: (options) =>
    Effect.map(startServer(options), ({ bus, route, url }) => ({
      bus,
      route,
      open: (path, headers = {}) =>
        Effect.acquireRelease(
          Effect.promise(() => openStream(`${url}${path}`, headers)),
          (s) => Effect.sync(() => s.close())
        ).pipe(Effect.map((s): Reader => ({
          status: s.status,
          text: () => s.text,
          ended: () => s.ended,
          parsed: () => s.parsed(),
          close: () => s.close()
        })))
    }))
}

const portable: Transport = {
  name: "portable",
  start: (options) =>
    Effect.gen(function*() {
      const layer = SseRoute.layer(options.route).pipe(Layer.provideMerge(EventBus.layerMemory(options.bus)))
      const runtime = yield* Layer.toRuntime(layer).pipe(Effect.orDie)
      const handler = HttpApp.toWebHandlerRuntime(runtime)(SseRoute.router)
      const bus = yield* EventBus.EventBus.pipe(Effect.provide(runtime))
      const route = yield* SseRoute.SseRoute.pipe(Effect.provide(runtime))
      return {
        bus,
        route,
        open: (path, headers = {}) =>
          Effect.acquireRelease(
            Effect.promise(async () => {
              const response = await handler(new Request(`http://sluice.test${path}`, { headers }))
              const reader = response.body!.getReader()
              const decoder = new TextDecoder()
              const state = { text: "", ended: false }
              void (async () => {
                try {
                  for (;;) {
                    const chunk = await reader.read()
                    if (chunk.done) break
                    state.text += decoder.decode(chunk.value, { stream: true })
                  }
                } catch {
                  // cancelled
                }
                state.ended = true
              })()
              return {
                status: response.status,
                text: () => state.text,
                ended: () => state.ended,
                parsed: () => parseSse(state.text),
                close: () => void reader.cancel().catch(() => {})
              } satisfies Reader
            }),
            (r) => Effect.sync(() => r.close())
          )
      }
    })
}

export const transports: ReadonlyArray<Transport> = [node, portable]
