/**
 * The server under test, run as a child of bench/run.ts so its memory and CPU are its own.
 *
 * - `sluice`: `SseRoute.router` served by `NodeHttpServer` (test/utils/server.ts), the memory log.
 * - `raw`: the anchor, a plain `node:http` server with the same wire bytes that coalesces per tick:
 *   the frames published in one tick are joined once and written with one `res.write` per connection.
 *   It keeps a ring of frames for `Last-Event-ID` replay (S9).
 *
 * Publishing happens here, on the driver's command, with the publish time embedded in `data`.
 */
import * as Http from "node:http"
import * as NodePerf from "node:perf_hooks"
import { PerformanceObserver } from "node:perf_hooks"
import { PassThrough } from "node:stream"
import { childConfig, serveIpc, wallNow } from "./lib/ipc.js"
import { startProfile, stopProfile, writeHeapSnapshot } from "./lib/profile.js"
import { eventData } from "./lib/stats.js"

export interface ServerConfig {
  readonly mode: "sluice" | "raw" | "platform"
  /** SseRoute options (durations in ms). */
  readonly route?: {
    readonly maxEvents?: number
    readonly maxBytes?: number
    readonly stallTimeoutMs?: number
    readonly writeDeadlineMs?: number
    readonly chunked?: boolean
  }
  /** `platform` mode: the body is an endless `Stream` (default) or a raw Node `Readable`. */
  readonly platformBody?: "stream" | "raw"
  /** Events the log (sluice) or the ring (raw) retains. */
  readonly logMaxEvents?: number
  /**
   * Body framing of the raw server: `chunked` (Node's default, the anchor) or `close` (close-delimited,
   * like sluice's default). sluice uses its default unless `route.chunked` is set.
   */
  readonly framing?: "chunked" | "close"
  /** `false`: sluice with the platform's request spans turned off (S7). */
  readonly tracer?: boolean
  /**
   * sluice under an OpenTelemetry tracer (every span sampled, then dropped): the request's span and
   * the span per SSE connection are on (S3). The driver's publish calls run outside it, untraced.
   */
  readonly otel?: boolean
}

interface Target {
  readonly port: number
  /** Publishes one event per `data` on `topic`, synchronously (the raw server has one topic). */
  readonly publish: (datas: ReadonlyArray<string>, topic?: string) => void
  /** Events accepted but not yet handed to a socket. */
  readonly backlogEvents: () => number
  readonly backlogBytes: () => number
  /** The largest buffer (in the bus's byte accounting) of any one subscriber; 0 for the raw server. */
  readonly maxSubscriberBytes: () => number
  /** The library's own count of open streams. */
  readonly connections: () => number
  readonly subscribers: () => number
  readonly head: () => { readonly epoch: string; readonly seq: number }
  readonly ends: () => Record<string, number>
  readonly close: () => Promise<void>
}

const config = childConfig<ServerConfig>()
const TOPIC = "bench"
const TYPE = "x"
const HOUR = 3_600_000

/** Open `GET /events` responses, tracked the same way for both modes. */
const responses = new Set<Http.ServerResponse>()
let stalled: { res: Http.ServerResponse; at: number; closedAt: number | undefined } | undefined

const track = (server: Http.Server) =>
  server.on("request", (req: Http.IncomingMessage, res: Http.ServerResponse) => {
    if (req.method !== "GET" || !req.url?.startsWith("/events")) return
    responses.add(res)
    res.on("close", () => responses.delete(res))
    if (req.headers["x-bench-stalled"] !== undefined) {
      const entry = { res, at: wallNow(), closedAt: undefined as number | undefined }
      stalled = entry
      res.on("close", () => {
        entry.closedAt = wallNow()
      })
    }
  })

const startSluice = async (): Promise<Target> => {
  // Loaded here only: Effect and the platform take seconds to load, the raw server needs neither.
  const [Effect, Exit, Scope, { startServer }] = await Promise.all([
    import("effect/Effect"),
    import("effect/Exit"),
    import("effect/Scope"),
    import("../test/utils/server.js")
  ])
  const { inspectSubscriber } = await import("../src/internal/eventBus.js")
  const scope = Effect.runSync(Scope.make())
  const route = config.route ?? {}
  const started = startServer({
    bus: { log: { maxEvents: config.logMaxEvents ?? 10_000 } },
    ...(config.tracer === undefined ? {} : { tracer: config.tracer }),
    route: {
      heartbeat: HOUR, // a heartbeat is a frame: keep them out of the exact delivery counts
      publish: true, // POST /events (S3p)
      ...(route.maxEvents === undefined ? {} : { maxEvents: route.maxEvents }),
      ...(route.maxBytes === undefined ? {} : { maxBytes: route.maxBytes }),
      ...(route.stallTimeoutMs === undefined ? {} : { stallTimeout: route.stallTimeoutMs }),
      ...(route.writeDeadlineMs === undefined ? {} : { writeDeadline: route.writeDeadlineMs }),
      ...(route.chunked === undefined ? {} : { chunked: route.chunked })
    }
  })
  const server = await Effect.runPromise(Scope.extend(
    config.otel === true ? Effect.withTracer(started, await otelTracer()) : started,
    scope
  ))
  track(server.server)
  const bus = server.bus
  const stats = () => Effect.runSync(bus.stats)
  // Read-only access to the bus's subscriber registry, for per-subscriber memory (S6): a throwaway
  // subscription leads to it and is closed at once.
  const hub = Effect.runSync(Effect.scoped(Effect.map(bus.subscribe({ topics: ["bench-probe"] }), (s) => inspectSubscriber(s).hub)))
  return {
    port: server.port,
    publish: (datas, topic = TOPIC) => {
      Effect.runSync(bus.publishAll(datas.map((data) => ({ topic, type: TYPE, data }))))
    },
    backlogEvents: () => stats().bufferedEvents,
    backlogBytes: () => stats().bufferedBytes,
    maxSubscriberBytes: () => {
      let max = 0
      for (const sub of hub.all) max = Math.max(max, sub.bytes)
      return max
    },
    connections: () => Effect.runSync(server.route.connections),
    subscribers: () => stats().subscribers,
    head: () => {
      const s = stats()
      return { epoch: s.log.epoch, seq: s.log.head }
    },
    ends: () => ({ ...stats().ends }),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** An Effect tracer over an OpenTelemetry tracer that samples every span and exports none. */
const otelTracer = async () => {
  const [Effect, OtelTracer, { AlwaysOnSampler, BasicTracerProvider, NoopSpanProcessor }] = await Promise.all([
    import("effect/Effect"),
    import("@effect/opentelemetry/Tracer"),
    import("@opentelemetry/sdk-trace-base")
  ])
  const provider = new BasicTracerProvider({ sampler: new AlwaysOnSampler(), spanProcessors: [new NoopSpanProcessor()] })
  return Effect.runSync(Effect.provideService(OtelTracer.make, OtelTracer.OtelTracer, provider.getTracer("bench")))
}

const startRaw = async (): Promise<Target> => {
  const epoch = "bench0raw1" // ten base-36 characters, like a sluice epoch
  const capacity = config.logMaxEvents ?? 10_000
  const ring: Array<Buffer | undefined> = new Array(capacity)
  let seq = 0
  const live = new Set<Http.ServerResponse>()
  let pending: Array<Buffer> = []
  let pendingBytes = 0
  let scheduled = false
  const flush = () => {
    scheduled = false
    if (pending.length === 0) return
    const joined = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes)
    pending = []
    pendingBytes = 0
    for (const res of live) res.write(joined)
  }
  const replay = (res: Http.ServerResponse, lastEventId: string | undefined) => {
    if (lastEventId === undefined) return
    const dash = lastEventId.lastIndexOf("-")
    const after = Number(lastEventId.slice(dash + 1))
    if (lastEventId.slice(0, dash) !== epoch || !Number.isSafeInteger(after) || after >= seq) return
    if (seq - after > capacity) return
    let parts: Array<Buffer> = []
    let size = 0
    for (let s = after + 1; s <= seq; s++) {
      const frame = ring[s % capacity]!
      parts.push(frame)
      size += frame.byteLength
      if (size >= 64 * 1024) {
        res.write(Buffer.concat(parts, size))
        parts = []
        size = 0
      }
    }
    if (parts.length > 0) res.write(Buffer.concat(parts, size))
  }
  const server = Http.createServer((req, res) => {
    if (req.method === "POST" && req.url === "/events") return post(req, res)
    if (req.method !== "GET" || !req.url?.startsWith("/events")) {
      res.writeHead(404).end()
      return
    }
    if (config.framing === "close") res.removeHeader("transfer-encoding")
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no",
      ...(config.framing === "close" ? { connection: "close" } : {})
    })
    res.write(`retry: ${1000 + Math.floor(Math.random() * 4001)}\n: sluice\n\n`)
    const header = req.headers["last-event-id"]
    replay(res, typeof header === "string" ? header : undefined)
    live.add(res)
    res.on("close", () => live.delete(res))
  })
  const append = (data: string, type = TYPE) => {
    seq++
    const frame = Buffer.from(`id: ${epoch}-${seq}\nevent: ${type}\ndata: ${data}\n\n`, "utf8")
    ring[seq % capacity] = frame
    pending.push(frame)
    pendingBytes += frame.byteLength
    if (!scheduled) {
      scheduled = true
      setImmediate(flush)
    }
  }
  /** `POST /events` (S3p): a bounded JSON body `{topic, type?, data}`, appended and fanned out like `publish`. */
  const post = (req: Http.IncomingMessage, res: Http.ServerResponse) => {
    const parts: Array<Buffer> = []
    let size = 0
    req.on("data", (chunk: Buffer) => {
      size += chunk.byteLength
      if (size <= 1024 * 1024) parts.push(chunk)
    })
    req.on("end", () => {
      let input: { topic?: unknown; type?: unknown; data?: unknown } | undefined
      try {
        input = size <= 1024 * 1024 ? JSON.parse(Buffer.concat(parts, size).toString("utf8")) : undefined
      } catch {
        input = undefined
      }
      if (typeof input?.topic !== "string" || typeof input.data !== "string" || (input.type !== undefined && typeof input.type !== "string")) {
        res.writeHead(400, { "content-type": "application/json" }).end(`{"error":"invalid_event","message":"bad body"}`)
        return
      }
      append(input.data, input.type as string | undefined)
      const body = JSON.stringify({ id: `${epoch}-${seq}` })
      res.writeHead(201, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) }).end(body)
    })
  }
  track(server)
  await new Promise<void>((resolve) => server.listen({ port: 0, host: "127.0.0.1", backlog: 4096 }, resolve))
  const address = server.address()
  return {
    port: typeof address === "object" && address !== null ? address.port : 0,
    publish: (datas) => {
      for (const data of datas) append(data)
    },
    backlogEvents: () => pending.length,
    backlogBytes: () => pendingBytes,
    maxSubscriberBytes: () => 0,
    connections: () => live.size,
    subscribers: () => live.size,
    head: () => ({ epoch, seq }),
    ends: () => ({}),
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of live) res.destroy()
        server.close(() => resolve())
      })
  }
}

/**
 * The @effect/platform floor (memory reference only, S7): an `HttpRouter` route served by
 * `NodeHttpServer` whose body `Stream` emits the opening bytes and then never ends. No bus, no
 * publishing: what one idle streaming response costs in the platform before sluice adds anything.
 */
const startPlatform = async (): Promise<Target> => {
  const [Effect, Exit, Layer, Scope, Stream, HttpRouter, HttpServer, HttpServerResponse, NodeHttpServer] = await Promise.all([
    import("effect/Effect"),
    import("effect/Exit"),
    import("effect/Layer"),
    import("effect/Scope"),
    import("effect/Stream"),
    import("@effect/platform/HttpRouter"),
    import("@effect/platform/HttpServer"),
    import("@effect/platform/HttpServerResponse"),
    import("@effect/platform-node/NodeHttpServer")
  ])
  const scope = Effect.runSync(Scope.make())
  const server = Http.createServer()
  track(server)
  const router = HttpRouter.empty.pipe(
    HttpRouter.get(
      "/events",
      Effect.sync(() => {
        const opening = Buffer.from(`retry: 1000\n: sluice\n\n`)
        if (config.platformBody === "raw") {
          // A Node Readable as a raw body: the platform awaits one `pipeline` promise.
          const body = new PassThrough()
          body.write(opening)
          return HttpServerResponse.raw(body, { contentType: "text/event-stream" })
        }
        return HttpServerResponse.stream(Stream.concat(Stream.make(opening as Uint8Array), Stream.never), {
          contentType: "text/event-stream"
        })
      })
    )
  )
  const layer = HttpServer.serve(router).pipe(
    Layer.provide(NodeHttpServer.layer(() => server, { port: 0, host: "127.0.0.1" }))
  )
  await Effect.runPromise(Scope.extend(Layer.buildWithScope(layer, scope), scope))
  const address = server.address()
  return {
    port: typeof address === "object" && address !== null ? address.port : 0,
    publish: () => {},
    backlogEvents: () => 0,
    backlogBytes: () => 0,
    maxSubscriberBytes: () => 0,
    connections: () => responses.size,
    subscribers: () => responses.size,
    head: () => ({ epoch: "", seq: 0 }),
    ends: () => ({}),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const target = config.mode === "raw"
  ? await startRaw()
  : config.mode === "platform"
  ? await startPlatform()
  : await startSluice()

/** A response (other than the stalled client's) whose socket waits for 'drain', if any. */
const blockedResponse = (): Http.ServerResponse | undefined => {
  for (const res of responses) {
    if (res.writableNeedDrain && res !== stalled?.res) return res
  }
  return undefined
}

const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve))

const drained = (res: Http.ServerResponse) =>
  new Promise<void>((resolve) => {
    const done = () => {
      res.off("drain", done)
      res.off("close", done)
      resolve()
    }
    res.on("drain", done)
    res.on("close", done)
  })

/**
 * Resolves once everything published has been handed to a socket and no socket waits for 'drain'.
 * It sleeps on 'drain' instead of polling, so the server's CPU time counts only real work.
 */
const caughtUp = async (): Promise<void> => {
  for (;;) {
    await nextTick() // the writers flush on setImmediate
    const blocked = blockedResponse()
    if (blocked !== undefined) {
      await drained(blocked)
      continue
    }
    if (target.backlogEvents() === 0) return
  }
}

const batchOf = (n: number, size: number): Array<string> => {
  const t = wallNow()
  const out = new Array<string>(n)
  for (let i = 0; i < n; i++) out[i] = eventData(t, size)
  return out
}

const sleepUntil = (deadline: number) =>
  new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, deadline - performance.now())))

const gc = (globalThis as { gc?: () => void }).gc

const memory = async () => {
  if (gc !== undefined) {
    for (let i = 0; i < 3; i++) {
      gc()
      await new Promise((r) => setImmediate(r))
    }
  }
  const m = process.memoryUsage()
  const resources: Record<string, number> = {}
  for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1
  return { heapUsed: m.heapUsed, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers, resources }
}

let sampler: {
  timer: NodeJS.Timeout
  result: Record<string, number | undefined>
  sample: () => void
  /** Wall ms at the start. */
  t0: number
  gcs: Array<{ at: number; ms: number; major: boolean }>
  observer: PerformanceObserver
} | undefined

serveIpc({
  info: () => ({
    responses: responses.size,
    connections: target.connections(),
    subscribers: target.subscribers(),
    backlogEvents: target.backlogEvents(),
    head: target.head(),
    ends: target.ends(),
    cpu: process.cpuUsage()
  }),
  /** Waits until the server holds exactly `n` open streams (both by its own count and by ours). */
  waitConnections: async ({ n, timeoutMs }: { n: number; timeoutMs: number }) => {
    const deadline = performance.now() + timeoutMs
    for (;;) {
      const ok = responses.size === n && target.connections() === n && target.subscribers() === n
      if (ok) return { ok: true, responses: responses.size }
      if (performance.now() > deadline) {
        return { ok: false, responses: responses.size, connections: target.connections(), subscribers: target.subscribers() }
      }
      await new Promise((r) => setTimeout(r, 20))
    }
  },
  memory,
  /** Publishes `events` in batches of `batch`, each batch waiting until the slowest socket caught up. */
  saturate: async ({ batch, events, size }: { events: number; batch: number; size: number }) => {
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    let sent = 0
    // Time inside the synchronous publish call: for sluice that is validation, the log append and
    // the fan-out into every subscriber's buffer (the socket writes happen later, in the writer).
    let publishMs = 0
    while (sent < events) {
      const n = Math.min(batch, events - sent)
      const data = batchOf(n, size)
      const p0 = performance.now()
      target.publish(data)
      publishMs += performance.now() - p0
      sent += n
      await caughtUp()
    }
    const cpu = process.cpuUsage(cpu0)
    return { published: sent, ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000, publishMs }
  },
  /** Publishes `perSec` events per second (in batches of `batch`) for `durationMs`, on a drift-free clock. */
  rate: async ({ batch = 1, durationMs, minDurationMs, perSec, size, topic, untilStalledClosed = false }: {
    perSec: number
    durationMs: number
    batch?: number
    size: number
    topic?: string
    /** Stop early (after `minDurationMs`) once the stalled client's response has closed (S6). */
    untilStalledClosed?: boolean
    minDurationMs?: number
  }) => {
    const period = (1000 * batch) / perSec
    const count = Math.max(1, Math.round(durationMs / period))
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    let late = 0
    for (let i = 0; i < count; i++) {
      const due = t0 + i * period
      if (untilStalledClosed && due - t0 >= (minDurationMs ?? 0) && stalled?.closedAt !== undefined) {
        const cpu = process.cpuUsage(cpu0)
        return { published: i * batch, maxLateMs: late, cpuMs: (cpu.user + cpu.system) / 1000 }
      }
      await sleepUntil(due)
      late = Math.max(late, performance.now() - due)
      target.publish(batchOf(batch, size), topic)
    }
    const cpu = process.cpuUsage(cpu0)
    return { published: count * batch, maxLateMs: late, cpuMs: (cpu.user + cpu.system) / 1000 }
  },
  /** Publishes `events` at once (no pacing), e.g. to fill the log before a resume test. */
  burst: ({ batch = 64, events, size }: { events: number; batch?: number; size: number }) => {
    for (let sent = 0; sent < events; sent += batch) target.publish(batchOf(Math.min(batch, events - sent), size))
    return target.head()
  },
  /** Starts sampling the stalled connection and the server's buffers every `everyMs`. */
  sampleStart: ({ everyMs }: { everyMs: number }) => {
    const t0 = wallNow()
    const ends0 = target.ends()
    if (stalled?.closedAt !== undefined) stalled = undefined // one from an earlier run
    const result: Record<string, number | undefined> = {
      maxStalledWritable: 0,
      maxBacklogBytes: 0,
      maxBacklogEvents: 0,
      maxSubscriberBytes: 0,
      maxHeapUsed: 0,
      maxRss: 0,
      endedAfterMs: undefined,
      closedAfterMs: undefined
    }
    const sample = () => {
      const m = process.memoryUsage()
      result.maxHeapUsed = Math.max(result.maxHeapUsed!, m.heapUsed)
      result.maxRss = Math.max(result.maxRss!, m.rss)
      result.maxBacklogBytes = Math.max(result.maxBacklogBytes!, target.backlogBytes())
      result.maxBacklogEvents = Math.max(result.maxBacklogEvents!, target.backlogEvents())
      result.maxSubscriberBytes = Math.max(result.maxSubscriberBytes!, target.maxSubscriberBytes())
      if (stalled !== undefined) {
        result.maxStalledWritable = Math.max(result.maxStalledWritable!, stalled.res.writableLength)
        if (stalled.closedAt !== undefined && result.closedAfterMs === undefined) {
          result.closedAfterMs = stalled.closedAt - t0
        }
      }
      if (result.endedAfterMs === undefined) {
        const ends = target.ends()
        for (const reason of ["overflow", "stalled"]) {
          const n = (ends[reason] ?? 0) - (ends0[reason] ?? 0)
          if (n > 0) {
            result.endedAfterMs = wallNow() - t0
            result[`ended_${reason}`] = n
          }
        }
      }
    }
    // GC pauses during the sampling: latency spikes on a busy heap line up with them.
    const gcs: Array<{ at: number; ms: number; major: boolean }> = []
    const observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind
        gcs.push({ at: performance.timeOrigin + e.startTime - t0, ms: e.duration, major: kind === NodePerf.constants.NODE_PERFORMANCE_GC_MAJOR })
      }
    })
    observer.observe({ entryTypes: ["gc"] })
    sampler = { timer: setInterval(sample, everyMs), result, sample, t0, gcs, observer }
    return null
  },
  sampleStop: () => {
    if (sampler === undefined) return null
    sampler.sample() // the latest state, e.g. a close that happened since the last tick
    clearInterval(sampler.timer)
    const { gcs, observer, result, t0 } = sampler
    observer.disconnect()
    sampler = undefined
    const major = gcs.filter((g) => g.major)
    return {
      ...result,
      t0,
      gcCount: gcs.length,
      gcTotalMs: gcs.reduce((a, g) => a + g.ms, 0),
      gcMaxMs: gcs.reduce((a, g) => Math.max(a, g.ms), 0),
      /** Major (mark-compact) GCs: [ms since the start, pause ms]. */
      gcMajor: major.map((g) => [Math.round(g.at), Math.round(g.ms * 10) / 10]),
      stalledOpen: stalled !== undefined && stalled.closedAt === undefined,
      ends: target.ends()
    }
  },
  /** Writes a heap snapshot to .bench-out/prof/<name>.heapsnapshot (after GC); returns the path. */
  heapSnapshot: async ({ name }: { name: string }) => {
    await memory()
    return writeHeapSnapshot(name)
  },
  profStart: () => startProfile(),
  profStop: ({ name }: { name: string }) => stopProfile(name),
  close: () => target.close()
}, { port: target.port, mode: config.mode, pid: process.pid })
