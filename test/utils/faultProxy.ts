/**
 * A TCP fault proxy of our own on loopback: it listens on 127.0.0.1:0, forwards every connection to a
 * target port, and breaks connections on command or on a seeded schedule:
 *
 * - `fin`: ends the client's connection cleanly (FIN) and closes the server side;
 * - `rst`: resets both sides (`resetAndDestroy`: a TCP RST);
 * - `midEvent`: forwards the next server bytes only up to the middle of an event (just after a
 *   `data: `), then ends the client's connection (FIN) and closes the server side: the client holds a
 *   partial event it must drop;
 * - `stall`: stops forwarding silently: it stops reading from the server and writing to the client,
 *   and sends neither FIN nor RST to either side (a half-open peer). The server side is left to the
 *   server; the client side stays open until the proxy closes.
 *
 * Each connection records when its server side closed, so a test can wait for the server to let go.
 * {@link injectRandomly} breaks connections of one or more proxies on a seeded schedule.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"

export type Fault = "fin" | "rst" | "midEvent" | "stall"

export const FAULTS: ReadonlyArray<Fault> = ["fin", "rst", "midEvent", "stall"]

/** One client connection and its server side. */
export interface ProxyConnection {
  readonly id: number
  readonly client: Net.Socket
  readonly upstream: Net.Socket
  /** Bytes forwarded from the server to the client. */
  readonly down: number
  /** The fault applied, if any. */
  readonly fault: Fault | undefined
  /** When the server side closed (`Date.now()`), or undefined while it is open. */
  readonly upstreamClosedAt: number | undefined
  /** Whether both sides are closed. */
  readonly closed: boolean
}

export interface FaultProxy {
  readonly port: number
  readonly url: string
  /** Every connection the proxy accepted, in order. */
  readonly connections: ReadonlyArray<ProxyConnection>
  /** Faults applied, by kind. */
  readonly counts: Readonly<Record<Fault, number>>
  /** `midEvent` faults that did cut an event (the others' streams ended before another event came). */
  readonly cuts: () => number
  /** Applies a fault to a connection; false when it is closed or already faulted. */
  readonly inject: (connection: ProxyConnection, fault: Fault) => boolean
  /** Open, unfaulted connections that have forwarded at least `minDown` bytes to their client. */
  readonly live: (minDown?: number) => ReadonlyArray<ProxyConnection>
}

export interface RandomFaults {
  /** The seeded source in [0, 1). */
  readonly random: () => number
  /** Injected in turn, each on a random connection. */
  readonly kinds: ReadonlyArray<Fault>
  /**
   * A fault every `minMillis`..`maxMillis`, on a random live connection of any of the proxies (one
   * that has forwarded at least `minDown` bytes, default 1).
   */
  readonly minMillis: number
  readonly maxMillis: number
  readonly minDown?: number
}

class Connection implements ProxyConnection {
  down = 0
  fault: Fault | undefined = undefined
  upstreamClosedAt: number | undefined = undefined
  clientClosed = false
  cut = false
  private cutNext = false

  constructor(readonly id: number, readonly client: Net.Socket, readonly upstream: Net.Socket) {
    client.on("error", () => {})
    upstream.on("error", () => {})
    client.on("data", (chunk: Buffer) => {
      if (this.fault === undefined && !upstream.write(chunk)) {
        client.pause()
        upstream.once("drain", () => client.resume())
      }
    })
    upstream.on("data", (chunk: Buffer) => this.fromServer(chunk))
    // A clean end of either side ends the other, unless the connection is stalled (then nothing moves).
    upstream.on("end", () => {
      if (this.fault !== "stall") client.end()
    })
    client.on("end", () => {
      if (this.fault !== "stall") upstream.end()
    })
    upstream.once("close", () => {
      this.upstreamClosedAt = Date.now()
      if (this.fault !== "stall") client.destroy()
    })
    client.once("close", () => {
      this.clientClosed = true
      if (this.fault !== "stall") upstream.destroy()
    })
  }

  get closed(): boolean {
    return this.clientClosed && this.upstreamClosedAt !== undefined
  }

  private fromServer(chunk: Buffer): void {
    if (this.fault === "stall") return
    if (this.cutNext) {
      const at = chunk.indexOf("\ndata: ")
      if (at < 0) return this.forward(chunk)
      this.cut = true
      this.client.end(chunk.subarray(0, at + "\ndata: ".length + 1))
      this.upstream.destroy()
      return
    }
    this.forward(chunk)
  }

  private forward(chunk: Buffer): void {
    this.down += chunk.length
    if (!this.client.write(chunk)) {
      this.upstream.pause()
      this.client.once("drain", () => {
        if (this.fault !== "stall") this.upstream.resume()
      })
    }
  }

  apply(fault: Fault): boolean {
    if (this.fault !== undefined || this.clientClosed || this.upstreamClosedAt !== undefined) return false
    this.fault = fault
    switch (fault) {
      case "fin":
        this.client.end()
        this.upstream.destroy()
        break
      case "rst":
        this.client.resetAndDestroy()
        this.upstream.resetAndDestroy()
        break
      case "midEvent":
        this.cutNext = true
        break
      case "stall":
        this.upstream.pause()
        this.client.pause()
        break
    }
    return true
  }
}

/** Starts a fault proxy to `127.0.0.1:targetPort` for the scope; closing it destroys every connection. */
export const startFaultProxy = (targetPort: number | (() => number)): Effect.Effect<FaultProxy, never, Scope.Scope> =>
  Effect.gen(function*() {
    const connections: Array<Connection> = []
    const counts: Record<Fault, number> = { fin: 0, rst: 0, midEvent: 0, stall: 0 }
    const server = Net.createServer({ pauseOnConnect: true }, (client) => {
      const port = typeof targetPort === "number" ? targetPort : targetPort()
      const upstream = Net.connect({ port, host: "127.0.0.1" })
      connections.push(new Connection(connections.length, client, upstream))
      upstream.once("connect", () => client.resume())
    })
    server.on("error", () => {})
    const inject = (connection: ProxyConnection, fault: Fault): boolean => {
      const applied = (connection as Connection).apply(fault)
      if (applied) counts[fault]++
      return applied
    }
    const live = (minDown = 1) => connections.filter((c) => c.fault === undefined && !c.clientClosed && c.upstreamClosedAt === undefined && c.down >= minDown)
    const port = yield* Effect.acquireRelease(
      Effect.async<number>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as Net.AddressInfo).port)))
      }),
      () =>
        Effect.async<void>((resume) => {
          for (const c of connections) {
            c.client.destroy()
            c.upstream.destroy()
          }
          server.close(() => resume(Effect.void))
        })
    )
    const cuts = () => connections.filter((c) => c.cut).length
    return { port, url: `http://127.0.0.1:${port}`, connections, counts, cuts, inject, live }
  })

/**
 * Injects seeded random faults into the live connections of `proxies` until `stop` is called (or
 * the scope closes): one schedule for all of them, so the fault rate does not grow with the number
 * of proxies.
 */
export const injectRandomly = (proxies: ReadonlyArray<FaultProxy>, plan: RandomFaults): Effect.Effect<() => void, never, Scope.Scope> =>
  Effect.gen(function*() {
    let timer: ReturnType<typeof setTimeout> | undefined
    let running = true
    let turn = 0
    const pick = <A>(items: ReadonlyArray<A>): A => items[Math.floor(plan.random() * items.length)]!
    const schedule = () => {
      timer = setTimeout(() => {
        if (!running) return
        const open = proxies.flatMap((proxy) => proxy.live(plan.minDown).map((connection) => ({ proxy, connection })))
        if (open.length > 0) {
          const { connection, proxy } = pick(open)
          // The kinds take turns (the connection is random): every kind is injected, whatever the seed.
          if (proxy.inject(connection, plan.kinds[turn % plan.kinds.length]!)) turn++
        }
        schedule()
      }, plan.minMillis + Math.floor(plan.random() * (plan.maxMillis - plan.minMillis + 1)))
    }
    schedule()
    const stop = () => {
      running = false
      clearTimeout(timer)
    }
    yield* Effect.addFinalizer(() => Effect.sync(stop))
    return stop
  })
