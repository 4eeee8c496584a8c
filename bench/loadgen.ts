/**
 * The SSE load generator: K endless streams per process, counting frames (`\n\n` terminators, found
 * with `Buffer.indexOf`, carrying the boundary across chunks) without parsing events, and sampling
 * publish→receive latency on every `sampleEvery`-th connection from the `"t":` publish time embedded
 * in `data` (the first event of each HTTP chunk).
 *
 * Each stream is a plain `net` socket read through `onread` into one shared buffer (no stream
 * machinery, no Buffer per read) with a minimal HTTP/1.1 response reader: the status line, then the
 * chunked body decoded in place with `subarray`. An undici client cost about 20 µs of CPU per chunk
 * and pegged its core below the raw server's rate at K >= 100 on this machine; this reader costs a
 * fraction of that. It reports its own CPU time so the driver can tell when the client, not the
 * server, is the limit.
 */
import * as Http from "node:http"
import * as Net from "node:net"
import { childConfig, serveIpc, wallNow } from "./lib/ipc.js"
import { eventData } from "./lib/stats.js"

interface LoadgenConfig {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string
}

const { origin } = childConfig<LoadgenConfig>()
const url = new URL(origin)
const NL = 10
const HEAD_END = Buffer.from("\r\n\r\n", "latin1")
/** Every socket reads into this one buffer; each read is consumed synchronously before the next. */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024)
const TERMINATOR = Buffer.from("\n\n", "latin1")
const T_KEY = Buffer.from("\"t\":", "latin1")

const HEAD = 0
const SIZE = 1
const DATA = 2
const CRLF = 3
const DONE = 4
/** A body delimited by the connection's close (no chunked encoding, no length): every byte is data. */
const RAW = 5

class Conn {
  /** Terminators seen since the response started (the opening `retry:`/comment block is the first). */
  frames = 0
  /** `frames` at the last reset: events counted from here. */
  base = 1
  lastNL = false
  reached = false
  closed = false
  socket: Net.Socket | undefined = undefined
  // HTTP response reader state
  state = HEAD
  head: Buffer | undefined = undefined
  size = 0
  extension = false
  remaining = 0
  crlf = 0
  constructor(readonly sampled: boolean) {}

  destroy(): void {
    this.socket?.destroy()
  }
}

const hex = (c: number): number =>
  c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1

/** Feeds raw socket bytes; returns the status code once the head is complete, 0 before. */
const feed = (conn: Conn, input: Buffer): number => {
  let buf = input
  let i = 0
  let status = 0
  if (conn.state === HEAD) {
    buf = conn.head === undefined ? input : Buffer.concat([conn.head, input])
    const end = buf.indexOf(HEAD_END)
    if (end < 0) {
      conn.head = Buffer.from(buf) // a copy: `input` is the shared read buffer
      return 0
    }
    conn.head = undefined
    const head = buf.toString("latin1", 0, end)
    status = Number(head.slice(9, 12))
    if (status !== 200) return status
    i = end + 4
    if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      conn.state = SIZE
      conn.size = 0
    } else if (!/\r\ncontent-length:/i.test(head)) {
      conn.state = RAW
    } else {
      return -1
    }
  }
  if (conn.state === RAW) {
    if (i < buf.length) onData(conn, i === 0 ? buf : buf.subarray(i))
    return status
  }
  while (i < buf.length) {
    switch (conn.state) {
      case SIZE: {
        const c = buf[i++]!
        if (c === NL) {
          if (conn.size === 0) {
            conn.state = DONE
            return status
          }
          conn.state = DATA
          conn.remaining = conn.size
          conn.size = 0
          conn.extension = false
        } else if (!conn.extension) {
          const v = hex(c)
          if (v >= 0) conn.size = conn.size * 16 + v
          else if (c === 59) conn.extension = true // ';' chunk extension
        }
        break
      }
      case DATA: {
        const n = Math.min(conn.remaining, buf.length - i)
        onData(conn, buf.subarray(i, i + n))
        i += n
        conn.remaining -= n
        if (conn.remaining === 0) {
          conn.state = CRLF
          conn.crlf = 2
        }
        break
      }
      case CRLF: {
        i++
        if (--conn.crlf === 0) conn.state = SIZE
        break
      }
      default:
        return status
    }
  }
  return status
}

let conns: Array<Conn> = []
let latency: Array<number> = []
/** Receive time (wall ms) of each latency sample. */
let latencyAt: Array<number> = []
let tFirst: number | undefined
let cpu0 = process.cpuUsage()
let wall0 = performance.now()
let goal: { perConn: number; remaining: number; resolve: (tLast: number) => void } | undefined

const parseT = (chunk: Buffer): number | undefined => {
  const i = chunk.indexOf(T_KEY)
  if (i < 0) return undefined
  let j = i + T_KEY.length
  const start = j
  while (j < chunk.length) {
    const c = chunk[j]!
    if ((c >= 48 && c <= 57) || c === 46) j++
    else break
  }
  if (j === chunk.length || j === start) return undefined // cut at the chunk's end
  return Number(chunk.toString("latin1", start, j))
}

const onData = (conn: Conn, chunk: Buffer): void => {
  let n = 0
  let pos = 0
  if (conn.lastNL && chunk[0] === NL) {
    n++
    pos = 1
  }
  while ((pos = chunk.indexOf(TERMINATOR, pos)) !== -1) {
    n++
    pos += 2
  }
  conn.lastNL = chunk[chunk.length - 1] === NL
  if (n === 0) return
  conn.frames += n
  if (conn.frames > conn.base) {
    if (tFirst === undefined) tFirst = wallNow()
    if (conn.sampled) {
      const t = parseT(chunk)
      if (t !== undefined) {
        const now = wallNow()
        latency.push(now - t)
        latencyAt.push(now)
      }
    }
    if (goal !== undefined && !conn.reached && conn.frames - conn.base >= goal.perConn) {
      conn.reached = true
      if (--goal.remaining === 0) {
        const g = goal
        goal = undefined
        g.resolve(wallNow())
      }
    }
  }
}

/** Opens one stream; resolves once its opening block (first terminator) arrived. */
const openOne = (
  path: string,
  sampled: boolean,
  headers: Record<string, string>
): { conn: Conn; opened: Promise<void> } => {
  const conn = new Conn(sampled)
  const opened = new Promise<void>((resolve, reject) => {
    let settled = false
    const settle = (error?: Error) => {
      if (settled) return
      settled = true
      if (error === undefined) resolve()
      else reject(error)
    }
    const socket = Net.connect({
      host: url.hostname,
      port: Number(url.port),
      onread: {
        buffer: READ_BUFFER,
        callback: (nread: number, buffer: Uint8Array) => {
          const status = feed(conn, (buffer as Buffer).subarray(0, nread))
          if (status !== 0 && status !== 200) {
            socket.destroy()
            settle(new Error(status < 0 ? "response has a content-length (not an endless stream)" : `status ${status}`))
          } else if (!settled && conn.frames > 0) {
            settle()
          }
          return true
        }
      }
    })
    conn.socket = socket
    socket.setNoDelay(true)
    let request = `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\n`
    for (const [name, value] of Object.entries(headers)) request += `${name}: ${value}\r\n`
    socket.write(request + "\r\n")
    socket.on("error", () => {})
    socket.on("close", () => {
      conn.closed = true
      settle(new Error("closed before the opening frame"))
    })
  })
  return { conn, opened }
}

const pool = async (n: number, concurrency: number, task: (i: number) => Promise<void>) => {
  let next = 0
  const worker = async () => {
    while (next < n) await task(next++)
  }
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, worker))
}

const counts = () => {
  let total = 0
  let min = Infinity
  let max = 0
  for (const c of conns) {
    const got = c.frames - c.base
    total += got
    if (got < min) min = got
    if (got > max) max = got
  }
  return { total, min: conns.length === 0 ? 0 : min, max, conns: conns.length, closed: conns.filter((c) => c.closed).length }
}

const cpuSince = () => {
  const cpu = process.cpuUsage(cpu0)
  return { cpuMs: (cpu.user + cpu.system) / 1000, wallMs: performance.now() - wall0 }
}

let stalledSocket: Net.Socket | undefined

/** One `POST /events` on a kept-alive connection of `agent`; resolves with the status. */
const postOne = (agent: Http.Agent, body: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const req = Http.request({
      host: url.hostname,
      port: url.port,
      method: "POST",
      path: "/events",
      agent,
      headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) }
    }, (res) => {
      res.resume()
      res.on("end", () => resolve(res.statusCode ?? 0))
      res.on("error", reject)
    })
    req.on("error", reject)
    req.end(body)
  })

serveIpc({
  /**
   * S3p: publishes `n` events through `POST /events`, one event per request, `concurrency` requests
   * in flight on as many kept-alive connections; the publish time is embedded in `data`.
   */
  post: async ({ concurrency, n, size, topic }: { n: number; concurrency: number; size: number; topic: string }) => {
    const agent = new Http.Agent({ keepAlive: true, maxSockets: concurrency })
    const t0 = performance.now()
    const statuses: Record<string, number> = {}
    let failed = 0
    let next = 0
    const worker = async () => {
      while (next < n) {
        next++
        const body = JSON.stringify({ topic, type: "x", data: eventData(wallNow(), size) })
        const status = await postOne(agent, body).catch(() => 0)
        statuses[status] = (statuses[status] ?? 0) + 1
        if (status !== 201) failed++
      }
    }
    await Promise.all(Array.from({ length: concurrency }, worker))
    agent.destroy()
    return { posted: n, failed, statuses, ms: performance.now() - t0 }
  },
  /** Opens `n` more streams (at most `concurrency` handshakes at a time); every `sampleEvery`-th is sampled. */
  open: async ({ concurrency = 200, headers = {}, n, path, sampleEvery = 0 }: {
    n: number
    path: string
    sampleEvery?: number
    concurrency?: number
    headers?: Record<string, string>
  }) => {
    const t0 = performance.now()
    let failed = 0
    let firstError: string | undefined
    const offset = conns.length
    await pool(n, concurrency, async (i) => {
      const { conn, opened } = openOne(path, sampleEvery > 0 && (offset + i) % sampleEvery === 0, headers)
      conns.push(conn)
      try {
        await opened
      } catch (error) {
        failed++
        firstError ??= String(error)
      }
    })
    return { opened: n - failed, failed, firstError, ms: performance.now() - t0 }
  },
  /** Starts a new measurement: counts, latency samples, first-receive time and CPU restart from here. */
  reset: () => {
    for (const c of conns) {
      c.base = c.frames
      c.reached = false
    }
    latency = []
    latencyAt = []
    tFirst = undefined
    cpu0 = process.cpuUsage()
    wall0 = performance.now()
    return null
  },
  /** Resolves once every stream received `perConn` events since the reset (or the timeout passed). */
  expect: ({ perConn, timeoutMs }: { perConn: number; timeoutMs: number }) =>
    new Promise((resolve) => {
      const finish = (tLast: number | undefined) => {
        clearTimeout(timer)
        goal = undefined
        resolve({ ok: tLast !== undefined, tFirst, tLast, ...counts(), ...cpuSince() })
      }
      const timer = setTimeout(() => finish(undefined), timeoutMs)
      let remaining = 0
      for (const c of conns) {
        c.reached = c.frames - c.base >= perConn
        if (!c.reached) remaining++
      }
      if (remaining === 0) return finish(wallNow())
      goal = { perConn, remaining, resolve: finish }
    }),
  counts,
  /** Latency samples (ms) since the reset. */
  latency: () => latency,
  /** Latency samples (ms) since the reset with their receive times (wall ms). */
  latencyTimeline: () => ({ at: latencyAt, ms: latency }),
  /** A raw socket that sends the GET and never reads (S6). */
  stall: ({ path }: { path: string }) =>
    new Promise((resolve, reject) => {
      stalledSocket?.destroy()
      const socket = Net.connect({ host: url.hostname, port: Number(url.port) }, () => {
        socket.write(`GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\nX-Bench-Stalled: 1\r\n\r\n`)
        socket.pause()
        resolve(null)
      })
      socket.on("error", () => {})
      socket.on("close", () => {})
      socket.once("error", reject)
      stalledSocket = socket
    }),
  /** Closes every stream (client-side destroy) and forgets them. */
  close: async () => {
    for (const c of conns) c.destroy()
    conns = []
    stalledSocket?.destroy()
    stalledSocket = undefined
    return null
  },
  /**
   * S8: opens `perSec` streams per second for `durationMs`; each is destroyed after a random hold in
   * [holdMinMs, holdMaxMs], and an `abortFraction` of them is aborted before the response arrives.
   */
  churn: async ({ abortFraction, durationMs, holdMaxMs, holdMinMs, path, perSec }: {
    perSec: number
    durationMs: number
    holdMinMs: number
    holdMaxMs: number
    abortFraction: number
    path: string
  }) => {
    let started = 0
    let streamed = 0
    let aborted = 0
    let errors = 0
    let open = 0
    const tick = 10
    const t0 = performance.now()
    const closedAll = new Promise<void>((resolve) => {
      const step = () => {
        const elapsed = performance.now() - t0
        if (elapsed >= durationMs) {
          const wait = () => (open === 0 ? resolve() : setTimeout(wait, 10))
          return wait()
        }
        // Catch up with the schedule: timers fire late on a busy machine.
        const due = Math.floor((elapsed * perSec) / 1000) - started
        for (let i = 0; i < due; i++) {
          started++
          open++
          const abortEarly = Math.random() < abortFraction
          const { conn, opened } = openOne(path, false, {})
          if (abortEarly) setImmediate(() => conn.destroy())
          opened.then(
            () => {
              streamed++
              const hold = holdMinMs + Math.random() * (holdMaxMs - holdMinMs)
              setTimeout(() => {
                conn.destroy()
                open--
              }, hold)
            },
            () => {
              if (abortEarly) aborted++
              else errors++
              open--
            }
          )
        }
        setTimeout(step, tick)
      }
      step()
    })
    await closedAll
    return { started, streamed, aborted, errors, ms: performance.now() - t0 }
  },
  /**
   * S9: opens `n` streams at once with `Last-Event-ID`; resolves when each received `perConn`
   * events, with the time from the first request to the last stream caught up.
   */
  replay: async ({ lastEventId, n, path, perConn, timeoutMs }: {
    n: number
    path: string
    lastEventId: string
    perConn: number
    timeoutMs: number
  }) => {
    for (const c of conns) c.reached = true
    const t0 = wallNow()
    const done = new Promise<number | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs)
      goal = {
        perConn,
        remaining: n,
        resolve: (t) => {
          clearTimeout(timer)
          resolve(t)
        }
      }
    })
    const opened = Array.from({ length: n }, () => {
      const { conn, opened } = openOne(path, false, { "last-event-id": lastEventId })
      conns.push(conn)
      return opened
    })
    const results = await Promise.allSettled(opened)
    const failed = results.filter((r) => r.status === "rejected").length
    const tLast = await done
    goal = undefined
    return { ok: tLast !== undefined && failed === 0, failed, t0, tLast, ...counts() }
  }
}, { pid: process.pid })
