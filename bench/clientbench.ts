/**
 * S12, run in processes of their own: one serves a recorded SSE body (N frames as the route writes
 * them, in 64 KiB writes, then the end); each client process reads it with one implementation and
 * reports the time and its own CPU from the request until the N-th event.
 *
 * - sluice: `SseClient.stream` on `FetchHttpClient` (the transport `eventsource@5` uses), consumed
 *   with `Stream.runForEachChunk`, counting.
 * - eventsource: `eventsource@5`, one listener for the frames' type, counting.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { EventSource } from "eventsource"
import * as Http from "node:http"
import type * as Net from "node:net"
import * as SseClient from "../src/SseClient.js"
import { childConfig, serveIpc } from "./lib/ipc.js"
import { eventData } from "./lib/stats.js"

export interface ClientRun {
  readonly url: string
  readonly impl: "sluice" | "eventsource"
  readonly events: number
}

export interface ClientResult {
  readonly ms: number
  readonly cpuMs: number
  readonly received: number
  readonly lastId: string
}

childConfig<Record<string, never>>()

const EPOCH = "bench0client1"

const serve = (args: { readonly events: number; readonly size: number }): Promise<number> => {
  let text = "retry: 60000\n: bench\n\n"
  for (let i = 1; i <= args.events; i++) text += `id: ${EPOCH}-${i}\nevent: x\ndata: ${eventData(i, args.size)}\n\n`
  const body = Buffer.from(text, "utf8")
  const server = Http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
    let at = 0
    const pump = () => {
      while (at < body.length) {
        const piece = body.subarray(at, at + 65_536)
        at += piece.length
        if (!res.write(piece)) return void res.once("drain", pump)
      }
      res.end()
    }
    res.on("error", () => {})
    pump()
  })
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as Net.AddressInfo).port)))
}

const runSluice = (c: ClientRun): Promise<{ received: number; lastId: string }> => {
  let received = 0
  let lastId = ""
  return Effect.runPromise(
    SseClient.stream(c.url, { retry: 60_000 }).pipe(
      Stream.take(c.events),
      Stream.runForEachChunk((chunk) =>
        Effect.sync(() => {
          received += chunk.length
          for (const item of chunk) if (item._tag === "Message") lastId = item.id
        })
      ),
      Effect.provide(FetchHttpClient.layer)
    )
  ).then(() => ({ received, lastId }))
}

const runEventSource = (c: ClientRun): Promise<{ received: number; lastId: string }> =>
  new Promise((resolve, reject) => {
    let received = 0
    const source = new EventSource(c.url)
    source.addEventListener("x", (event) => {
      if (++received === c.events) {
        source.close()
        resolve({ received, lastId: event.lastEventId })
      }
    })
    source.addEventListener("error", (event) => {
      if (received < c.events) {
        source.close()
        reject(new Error(`eventsource error after ${received} events: ${event.message ?? ""}`))
      }
    })
  })

const run = async (c: ClientRun): Promise<ClientResult> => {
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const { lastId, received } = await (c.impl === "sluice" ? runSluice(c) : runEventSource(c))
  const ms = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000, received, lastId }
}

serveIpc({ serve, run })
