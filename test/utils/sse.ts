/**
 * Client-side helpers for the SSE route tests: raw `node:net` and `node:http` clients, a byte-level
 * parse of a stream with `eventsource-parser`, and real-time polling (never the TestClock).
 */
import * as Effect from "effect/Effect"
import { createParser } from "eventsource-parser"
import * as Http from "node:http"
import * as Net from "node:net"

/** One event as a spec parser sees it. */
export interface ParsedEvent {
  readonly id: string | undefined
  readonly event: string | undefined
  readonly data: string
}

/** Everything a spec parser reports for a byte stream. */
export interface ParsedStream {
  readonly events: Array<ParsedEvent>
  readonly retries: Array<number>
  readonly comments: Array<string>
  readonly errors: Array<string>
  /**
   * The cursor a spec client would send on reconnect (`undefined`: none): the last dispatched event's
   * id (`eventsource-parser@3`, the line that supports Node 20, reports ids only with events).
   */
  readonly lastEventId: string | undefined
}

/**
 * Parses SSE text (or bytes, or text in pieces fed one after the other) with `eventsource-parser`; a
 * trailing partial event is not dispatched.
 */
export const parseSse = (input: string | Uint8Array | ReadonlyArray<string>): ParsedStream => {
  const out: ParsedStream & { lastEventId: string | undefined } = {
    events: [],
    retries: [],
    comments: [],
    errors: [],
    lastEventId: undefined
  }
  const parser = createParser({
    onEvent: (e) => {
      out.events.push({ id: e.id, event: e.event, data: e.data })
      if (e.id !== undefined) out.lastEventId = e.id === "" ? undefined : e.id
    },
    onRetry: (ms) => out.retries.push(ms),
    onComment: (c) => out.comments.push(c),
    onError: (e) => out.errors.push(e.message)
  })
  if (typeof input === "string") parser.feed(input)
  else if (input instanceof Uint8Array) parser.feed(Buffer.from(input).toString("utf8"))
  else for (const piece of input) parser.feed(piece)
  return out
}

/** Polls `check` on real time until it returns true; fails with `what` after `timeoutMillis`. */
export const waitFor = (what: string, check: () => boolean, timeoutMillis = 5_000): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const deadline = Date.now() + timeoutMillis
    let timer: ReturnType<typeof setTimeout> | undefined
    const poll = () => {
      if (check()) return resume(Effect.void)
      if (Date.now() >= deadline) return resume(Effect.dieMessage(`timed out after ${timeoutMillis} ms waiting for ${what}`))
      timer = setTimeout(poll, 5)
    }
    poll()
    return Effect.sync(() => clearTimeout(timer))
  })

/** Resolves `true` once `done()` holds (polled every millisecond), or `false` after `timeoutMillis`. */
export const until = (done: () => boolean, timeoutMillis: number): Promise<boolean> =>
  new Promise((resolve) => {
    const deadline = Date.now() + timeoutMillis
    const poll = () => {
      if (done()) return resolve(true)
      if (Date.now() >= deadline) return resolve(false)
      setTimeout(poll, 1)
    }
    poll()
  })

/** Like {@link waitFor} with an effectful check (e.g. `bus.stats`). */
export const waitForEffect = <A>(
  what: string,
  read: Effect.Effect<A>,
  done: (a: A) => boolean,
  timeoutMillis = 5_000
): Effect.Effect<A> =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMillis
    while (true) {
      const value = yield* read
      if (done(value)) return value
      if (Date.now() >= deadline) {
        return yield* Effect.dieMessage(`timed out after ${timeoutMillis} ms waiting for ${what}: ${JSON.stringify(value)}`)
      }
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 5)))
    }
  })

/** Real-time sleep (a plain timer, whatever clock the fiber has). */
export const sleepReal = (millis: number): Effect.Effect<void> =>
  Effect.promise(() => new Promise<void>((r) => setTimeout(r, millis)))

/** Number of active `Timeout` handles in this process. */
export const activeTimeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length

/** The request head of a GET, as raw bytes for a `node:net` socket. */
export const rawGet = (path: string, headers: Record<string, string> = {}): string => {
  let head = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n`
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`
  return head + "\r\n"
}

/** Collects what a raw socket receives (latin1 text) and whether it closed; errors are expected. */
export const reader = (socket: Net.Socket) => {
  const state = { text: "", closed: false }
  socket.setEncoding("latin1")
  socket.on("data", (chunk: string) => (state.text += chunk))
  socket.on("close", () => (state.closed = true))
  socket.on("error", () => {})
  return state
}

/** Opens a raw TCP connection to the server. */
export const connect = (port: number): Promise<Net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect({ port, host: "127.0.0.1" })
    socket.once("connect", () => resolve(socket))
    socket.once("error", reject)
  })

/** A finished HTTP response read to its end with `node:http`. */
export interface ReadResponse {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly body: string
  /** True when the body ended properly (for chunked: the terminator arrived). */
  readonly complete: boolean
}

/**
 * Sends one request with a fresh connection and reads the whole response. `until` (on the text read
 * so far) lets a caller stop reading an open stream: the request is then destroyed and `complete` is
 * false.
 */
export const request = (
  url: string,
  options: {
    readonly method?: string
    readonly headers?: Record<string, string>
    /** The body; pieces are written one by one (chunked, no content-length unless given). */
    readonly body?: string | Uint8Array | ReadonlyArray<string>
    readonly until?: (text: string) => boolean
    readonly timeoutMillis?: number
  } = {}
): Promise<ReadResponse> =>
  new Promise((resolve, reject) => {
    const req = Http.request(url, { method: options.method ?? "GET", headers: options.headers ?? {}, agent: false })
    const timer = setTimeout(() => {
      req.destroy()
      reject(new Error(`request ${options.method ?? "GET"} ${url} timed out`))
    }, options.timeoutMillis ?? 10_000)
    req.on("error", (e) => {
      clearTimeout(timer)
      reject(e)
    })
    req.on("response", (res) => {
      let body = ""
      let done = false
      const finish = (complete: boolean) => {
        if (done) return
        done = true
        clearTimeout(timer)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, complete })
      }
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => {
        body += chunk
        if (options.until?.(body) === true) {
          finish(false)
          req.destroy()
        }
      })
      res.on("end", () => finish(res.complete))
      res.on("close", () => finish(res.complete))
      res.on("error", () => finish(false))
    })
    if (Array.isArray(options.body)) {
      for (const piece of options.body) req.write(piece)
      req.end()
    } else {
      req.end(options.body as string | Uint8Array | undefined)
    }
  })

/** An open SSE stream read with `node:http`: the text so far, parsed on demand. */
export interface OpenStream {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  text: string
  ended: boolean
  complete: boolean
  readonly parsed: () => ParsedStream
  readonly close: () => void
}

/** Opens an SSE stream (fresh connection) and resolves once the status and headers arrived. */
export const openStream = (url: string, headers: Record<string, string> = {}): Promise<OpenStream> =>
  new Promise((resolve, reject) => {
    const req = Http.get(url, { headers: { accept: "text/event-stream", ...headers }, agent: false })
    req.on("error", reject)
    req.on("response", (res) => {
      const stream: OpenStream = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        text: "",
        ended: false,
        complete: false,
        parsed: () => parseSse(stream.text),
        close: () => req.destroy()
      }
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => {
        stream.text += chunk
      })
      const end = () => {
        stream.ended = true
        stream.complete = res.complete
      }
      res.on("end", end)
      res.on("close", end)
      res.on("error", () => {})
      req.on("error", () => {})
      resolve(stream)
    })
  })

/** Acquires an {@link openStream} for the scope (destroyed when it closes). */
export const openStreamScoped = (url: string, headers: Record<string, string> = {}) =>
  Effect.acquireRelease(Effect.promise(() => openStream(url, headers)), (s) => Effect.sync(() => s.close()))
