/**
 * Test-only SSE servers for the delivery checker's controls, built from the real pieces (a memory
 * `EventLog` and an `EventBus` over it) and a bare `node:http` server, so real `eventsource` clients
 * drive them. Each resume goes through a window the test fills through `inWindow` (it publishes
 * there), so the race a broken variant has is hit on every resume, not by luck:
 *
 * - `correct`: subscribes with `after` (the bus replays, then goes live with the floor): the harness
 *   itself loses nothing.
 * - `read-then-subscribe`: reads the log after the cursor, runs the window, then subscribes live:
 *   events published in the window are never sent.
 * - `no-floor`: subscribes live, runs the window, then replays the log up to its head and sends
 *   the live buffer too, without dropping what the replay already sent: the window's events go out
 *   twice.
 *
 * Every stream ends (the response closes) after `perConnection` live events, so a client resumes
 * many times. `afterSubscribe` runs once the live subscription is registered (a test publishes a
 * live event there, which moves the client's cursor past the window).
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import type * as Net from "node:net"
import * as Event from "../../src/Event.js"
import * as EventBus from "../../src/EventBus.js"
import * as EventLog from "../../src/EventLog.js"

export type Variant = "correct" | "read-then-subscribe" | "no-floor"

export interface ControlServer {
  readonly url: string
  readonly bus: EventBus.EventBus["Type"]
  readonly log: EventLog.EventLog["Type"]
  /** Resumes served (requests with a cursor). */
  readonly resumes: () => number
}

export interface ControlOptions {
  readonly variant: Variant
  readonly perConnection: number
  /** Runs between the two steps of every resume (read and subscribe, in the variant's order). */
  readonly inWindow: Effect.Effect<void>
  /** Runs once the live subscription is registered. */
  readonly afterSubscribe: Effect.Effect<void>
}

const frame = (event: Event.Event): string => `id: ${Event.formatId(event.id)}\ndata: ${event.data}\n\n`

/** Every event of the memory log after `after` up to `upTo`. */
const readAll = (log: EventLog.EventLog["Type"], after: number, upTo: number) =>
  Effect.gen(function*() {
    const events: Array<Event.Event> = []
    let cursor = after
    while (cursor < upTo) {
      const page = yield* log.read(cursor, { limit: 10_000, upTo })
      events.push(...page.events)
      cursor = page.cursor
    }
    return events
  })

const cursorOf = (req: Http.IncomingMessage): number | undefined => {
  const header = req.headers["last-event-id"]
  const raw = typeof header === "string" ? header : new URL(req.url ?? "/", "http://x").searchParams.get("lastEventId")
  if (raw === null || raw === undefined) return undefined
  const parsed = Event.parseId(raw)
  return parsed._tag === "Right" ? parsed.right.seq : undefined
}

/** One stream: the variant's resume, then live events until `perConnection` of them were written. */
const serve = (
  bus: EventBus.EventBus["Type"],
  log: EventLog.EventLog["Type"],
  options: ControlOptions,
  after: number | undefined,
  res: Http.ServerResponse
) =>
  Effect.gen(function*() {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "close" })
    res.write("retry: 20\n\n")
    const write = (events: Iterable<Event.Event>) => {
      for (const event of events) res.write(frame(event))
    }
    let subscription: EventBus.Subscription
    if (after === undefined || options.variant === "correct") {
      if (after !== undefined) yield* options.inWindow
      const head = yield* log.head
      subscription = yield* bus.subscribe(after === undefined ? {} : { after: `${head.epoch}-${after}`, maxReplay: 1_000_000 })
    } else if (options.variant === "read-then-subscribe") {
      write(yield* readAll(log, after, (yield* log.head).seq))
      yield* options.inWindow
      subscription = yield* bus.subscribe()
    } else {
      subscription = yield* bus.subscribe()
      yield* options.inWindow
      write(yield* readAll(log, after, (yield* log.head).seq))
    }
    yield* options.afterSubscribe
    let live = 0
    while (live < options.perConnection) {
      const [events, done] = yield* subscription.takeAll
      write(events)
      live += events.length
      if (done) break
    }
    res.end()
  }).pipe(Effect.scoped)

/** Serves the variant on 127.0.0.1:0 for the scope. */
export const startControlServer = (options: ControlOptions): Effect.Effect<ControlServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const log = yield* EventLog.makeMemory({ maxEvents: 1_000_000 }).pipe(Effect.orDie)
    const bus = yield* EventBus.make({ maxEvents: 100_000, maxReplay: 1_000_000 }).pipe(
      Effect.provideService(EventLog.EventLog, log),
      Effect.orDie
    )
    let resumes = 0
    const fibers = new Set<Fiber.RuntimeFiber<void, unknown>>()
    const server = Http.createServer((req, res) => {
      const after = cursorOf(req)
      if (after !== undefined) resumes++
      res.on("error", () => {})
      const fiber = Effect.runFork(serve(bus, log, options, after, res))
      fibers.add(fiber)
      fiber.addObserver((exit) => {
        fibers.delete(fiber)
        if (Exit.isFailure(exit) && !Exit.isInterrupted(exit)) res.destroy()
      })
      req.socket.once("close", () => Effect.runFork(Fiber.interrupt(fiber)))
    })
    server.on("connection", (socket: Net.Socket) => socket.on("error", () => {}))
    const port = yield* Effect.acquireRelease(
      Effect.async<number>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as Net.AddressInfo).port)))
      }),
      () =>
        Effect.zipRight(
          Fiber.interruptAll(fibers),
          Effect.async<void>((resume) => {
            server.closeAllConnections()
            server.close(() => resume(Effect.void))
          })
        )
    )
    return { url: `http://127.0.0.1:${port}`, bus, log, resumes: () => resumes }
  })
