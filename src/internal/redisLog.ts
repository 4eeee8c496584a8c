/** @internal */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import type * as Event from "../Event.js"
import type * as EventLog from "../EventLog.js"
import { EventLogError } from "./errors.js"
import type * as Redis from "../EventLog/Redis.js"
import { EventRecord } from "./event.js"
import { invalidKey } from "./eventLog.js"
import { backoffMillis, type Client, connect, redactUrl, runScript, send, unavailable } from "./redisClient.js"
import { APPEND, META, READ } from "./redisScripts.js"

/** @internal */
export interface Settings {
  readonly url: string
  readonly keys: { readonly meta: string; readonly stream: string; readonly idempotency: string }
  readonly maxEvents: number
  readonly maxAgeMillis: number
  readonly windowMillis: number
  readonly commandTimeoutMillis: number
  readonly connectTimeoutMillis: number
  readonly blockMillis: number
}

const PREFIX_RE = /^[A-Za-z0-9._:/-]{1,64}$/
/** Entries one tail read or one page of a read asks for. */
const TAIL_COUNT = 1_000
const MAX_PAGE = 1_000

/** @internal */
export const resolveOptions = (options: Redis.RedisOptions | undefined): Either.Either<Settings, EventLog.EventLogError> => {
  const invalid = (message: string) => Either.left(new EventLogError({ reason: "InvalidOption", message }))
  const url = options?.url ?? "redis://127.0.0.1:6379"
  if (!/^rediss?:\/\//.test(url)) return invalid("url must start with redis:// or rediss://")
  const prefix = options?.prefix ?? "sluice"
  if (!PREFIX_RE.test(prefix)) return invalid("prefix must be 1-64 characters of A-Z a-z 0-9 . _ : / -")
  const maxEvents = options?.maxEvents ?? 10_000
  if (!Number.isSafeInteger(maxEvents) || maxEvents < 1) return invalid(`maxEvents must be a positive integer, got ${maxEvents}`)
  const durations: Record<string, number> = {}
  const defaults = { maxAge: undefined, idempotencyWindow: "5 minutes", commandTimeout: "5 seconds", connectTimeout: "5 seconds", blockTimeout: "2 seconds" } as const
  for (const [name, fallback] of Object.entries(defaults)) {
    const input = options?.[name as keyof typeof defaults] ?? fallback
    if (input === undefined) {
      durations[name] = 0
      continue
    }
    const decoded = Duration.decodeUnknown(input)
    if (decoded._tag === "None" || !Duration.isFinite(decoded.value) || Duration.toMillis(decoded.value) < 1) {
      return invalid(`${name} must be a positive duration`)
    }
    durations[name] = Math.ceil(Duration.toMillis(decoded.value))
  }
  const tag = `{${prefix}}`
  return Either.right({
    url,
    keys: { meta: `${tag}:meta`, stream: `${tag}:stream`, idempotency: `${tag}:idem:` },
    maxEvents,
    maxAgeMillis: durations.maxAge!,
    windowMillis: durations.idempotencyWindow!,
    commandTimeoutMillis: durations.commandTimeout!,
    connectTimeoutMillis: durations.connectTimeout!,
    blockMillis: durations.blockTimeout!
  })
}

/**
 * The epoch a script creates if the log's meta is missing: about 52 random bits in base 36. Sent
 * with every call, so it is cheap (`Math.random`); it needs to be unpredictable to no one, only
 * different from the log's earlier epochs.
 */
const epochToken = (): string =>
  (Math.floor(Math.random() * 2 ** 26) * 2 ** 26 + Math.floor(Math.random() * 2 ** 26)).toString(36)

/** A reply that is not the shape a script or command returns. */
class Garbage extends Error {}

const arr = (value: unknown): ReadonlyArray<unknown> => {
  if (!Array.isArray(value)) throw new Garbage("expected an array")
  return value
}
const str = (value: unknown): string => {
  if (typeof value === "string") return value
  if (typeof value === "number") return String(value)
  throw new Garbage("expected a string")
}
const int = (value: unknown): number => {
  const n = Number(str(value))
  if (!Number.isSafeInteger(n) || n < 0) throw new Garbage("expected a non-negative integer")
  return n
}

const parse = <A>(f: () => A): Effect.Effect<A, EventLog.EventLogError> =>
  Effect.try({ try: f, catch: (cause) => unavailable("Redis answered an unexpected reply", cause) })

/** A stream id `<m>-<seq>`. */
const splitId = (id: string): readonly [m: string, seq: number] => {
  const dash = id.indexOf("-")
  return [id.slice(0, dash), int(id.slice(dash + 1))]
}

/** A stream entry `[id, [t, time, p, topic, y, type, d, data]]` as an event of `epoch`. */
const toEvent = (epoch: string, entry: unknown): EventRecord => {
  const [id, fields] = arr(entry)
  const f = arr(fields)
  if (f[0] !== "t" || f[2] !== "p" || f[4] !== "y" || f[6] !== "d") throw new Garbage("unexpected stream entry fields")
  return new EventRecord({ epoch, seq: splitId(str(id))[1] }, str(f[3]), str(f[5]), str(f[7]), int(f[1]))
}

interface Meta {
  readonly epoch: string
  readonly m: string
  readonly head: number
  readonly earliest: number
}

const parseMeta = (reply: unknown): Meta => {
  const [epoch, m, head, earliest] = arr(reply)
  return { epoch: str(epoch), m: str(m), head: int(head), earliest: int(earliest) }
}

interface Follower {
  readonly listener: (events: ReadonlyArray<Event.Event>) => void
  readonly onReset: ((head: Event.EventId) => void) | undefined
}

/** @internal */
export const tailLag = Metric.histogram(
  "sluice_log_tail_lag_seconds",
  MetricBoundaries.exponential({ start: 0.0005, factor: 2, count: 16 }),
  "Time from an event's append in Redis to its fan-out on this node (tail reader)"
)

/**
 * The node's one tail reader: it reads the stream from the last id it delivered with `XREAD BLOCK`
 * on a dedicated connection and hands every batch to the followers, in log order.
 * @internal
 */
export class Tail {
  /** `labels`: the lag histogram's, `log="<prefix>"`. */
  constructor(private readonly labels: ReadonlyArray<MetricLabel.MetricLabel> = []) {}
  epoch: string | undefined = undefined
  m = ""
  position = 0
  failures = 0
  readonly followers = new Set<Follower>()
  private readonly waiters = new Set<() => void>()

  /** Adopts the meta: the first time, or as a reset when the epoch changed or the seq went back. */
  sync(meta: Meta): void {
    if (this.epoch === undefined) {
      this.epoch = meta.epoch
      this.m = meta.m
      this.position = meta.head
    } else if (meta.epoch !== this.epoch || meta.m !== this.m || meta.head < this.position) {
      this.reset({ epoch: meta.epoch, seq: meta.head }, meta.m)
    }
    this.progress()
  }

  reset(head: Event.EventId, m: string): void {
    this.epoch = head.epoch
    this.m = m
    this.position = head.seq
    for (const follower of this.followers) follower.onReset?.(head)
  }

  deliver(events: ReadonlyArray<Event.Event>): void {
    if (events.length === 0) return
    this.position = events[events.length - 1]!.id.seq
    tailLag.unsafeUpdate(Math.max(0, Date.now() - events[events.length - 1]!.time) / 1000, this.labels)
    for (const follower of this.followers) follower.listener(events)
    this.progress()
  }

  /** Completes once the reader has delivered everything up to `head`, in `head`'s epoch. */
  reached(head: Event.EventId): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      const check = () => {
        if (this.epoch === head.epoch && this.position >= head.seq) {
          this.waiters.delete(check)
          resume(Effect.void)
        }
      }
      this.waiters.add(check)
      check()
      return Effect.sync(() => this.waiters.delete(check))
    })
  }

  private progress(): void {
    for (const waiter of Array.from(this.waiters)) waiter()
  }
}

/** @internal */
export const make = (options?: Redis.RedisOptions): Effect.Effect<EventLog.EventLog["Type"], EventLog.EventLogError, Scope.Scope> =>
  Effect.gen(function*() {
    const settings = yield* resolveOptions(options)
    const client = yield* connect({ url: settings.url, name: "sluice", connectTimeoutMillis: settings.connectTimeoutMillis, reconnect: true })
    const timeout = settings.commandTimeoutMillis
    const baseKeys = [settings.keys.meta, settings.keys.stream]
    if (!client.isReady) {
      // The log starts anyway: its commands fail with `Unavailable` until the client connects by itself.
      yield* Effect.logWarning(`Redis at ${redactUrl(settings.url)} is unreachable; the log retries in the background`)
    }
    // Load the scripts once; later calls go by SHA1 (and fall back to EVAL on NOSCRIPT, which
    // caches the script: so a load that fails now, Redis being down, costs nothing later).
    for (const script of [META, READ, APPEND]) yield* Effect.ignore(send(client, ["SCRIPT", "LOAD", script.body], timeout))

    const meta = (on: Client) =>
      Effect.flatMap(runScript(on, META, baseKeys, [epochToken()], timeout), (reply) => parse(() => parseMeta(reply)))

    const layerScope = yield* Effect.scope
    const tail = new Tail([MetricLabel.make("log", options?.prefix ?? "sluice")])
    let tailStarted = false
    const startTail = Effect.suspend(() => {
      if (tailStarted) return Effect.void
      tailStarted = true
      return Effect.asVoid(Effect.forkIn(runTail(tail, settings, meta), layerScope))
    })

    return {
      epoch: Effect.map(meta(client), (m) => m.epoch),
      head: Effect.map(meta(client), (m) => ({ epoch: m.epoch, seq: m.head })),
      earliest: Effect.map(meta(client), (m) => m.earliest),
      append: groupAppends((inputs) => append(client, settings, inputs)),
      read: (after, readOptions) => read(client, settings, after, readOptions),
      follow: (listener, onReset) =>
        Effect.gen(function*() {
          yield* startTail
          const head = yield* Effect.map(meta(client), (m) => ({ epoch: m.epoch, seq: m.head }))
          yield* tail.reached(head).pipe(
            Effect.timeoutFail({
              duration: Duration.millis(settings.connectTimeoutMillis + settings.blockMillis + timeout),
              onTimeout: () => unavailable("the tail reader did not reach the log's head", undefined)
            })
          )
          const follower: Follower = { listener, onReset }
          return yield* Effect.acquireRelease(
            Effect.sync((): Event.EventId => {
              tail.followers.add(follower)
              return { epoch: tail.epoch!, seq: tail.position }
            }),
            () => Effect.sync(() => tail.followers.delete(follower))
          )
        })
    }
  })

/** Most inputs one script call appends when concurrent appends are grouped. */
const MAX_GROUP = 512

interface Waiting {
  readonly inputs: ReadonlyArray<Event.EventInput>
  readonly resume: (effect: Effect.Effect<ReadonlyArray<Event.Event>, EventLogError>) => void
  sent: boolean
}

/**
 * Group commit: appends issued in the same turn of the event loop go to Redis as one script call
 * (up to {@link MAX_GROUP} inputs, never splitting an append), and each caller gets its own slice
 * of the result. The script appends inputs in order, so every append stays one consecutive,
 * atomic range; a failure fails every append of the group (none of it was stored, or, if the
 * reply was lost, all of it may have been: retry with idempotency keys).
 * @internal
 */
export const groupAppends = (
  run: (inputs: ReadonlyArray<Event.EventInput>) => Effect.Effect<ReadonlyArray<Event.Event>, EventLogError>
) => {
  let queue: Array<Waiting> = []
  const sendGroup = (group: ReadonlyArray<Waiting>) => {
    const inputs = group.length === 1 ? group[0]!.inputs : group.flatMap((w) => w.inputs)
    Effect.runCallback(run(inputs), {
      onExit: (exit) => {
        let at = 0
        for (const waiting of group) {
          const n = waiting.inputs.length
          waiting.resume(exit._tag === "Success" ? Effect.succeed(exit.value.slice(at, at + n)) : exit)
          at += n
        }
      }
    })
  }
  const flush = () => {
    const waiting = queue.filter((w) => !w.sent)
    queue = []
    let group: Array<Waiting> = []
    let size = 0
    for (const w of waiting) {
      if (group.length > 0 && size + w.inputs.length > MAX_GROUP) {
        sendGroup(group)
        group = []
        size = 0
      }
      w.sent = true
      group.push(w)
      size += w.inputs.length
    }
    if (group.length > 0) sendGroup(group)
  }
  return (inputs: ReadonlyArray<Event.EventInput>): Effect.Effect<ReadonlyArray<Event.Event>, EventLogError> => {
    if (inputs.length === 0) return Effect.succeed([])
    const invalid = invalidKey(inputs)
    if (invalid !== undefined) return Effect.fail(invalid)
    return Effect.async((resume) => {
      const waiting: Waiting = { inputs, resume, sent: false }
      if (queue.length === 0) setImmediate(flush)
      queue.push(waiting)
      // Interrupted before it was sent: leave it out. Once sent, it is in Redis's hands.
      return Effect.sync(() => {
        waiting.sent = true
      })
    })
  }
}

const append = (
  client: Client,
  settings: Settings,
  inputs: ReadonlyArray<Event.EventInput>
): Effect.Effect<ReadonlyArray<Event.Event>, EventLog.EventLogError> => {
  if (inputs.length === 0) return Effect.succeed([])
  const invalid = invalidKey(inputs)
  if (invalid !== undefined) return Effect.fail(invalid)
  const keys = [settings.keys.meta, settings.keys.stream]
  const keyIndex = new Map<string, number>()
  const args = [epochToken(), String(settings.maxEvents), String(settings.maxAgeMillis), String(settings.windowMillis), String(inputs.length)]
  for (const input of inputs) {
    let index = 0
    if (input.idempotencyKey !== undefined) {
      index = keyIndex.get(input.idempotencyKey) ?? 0
      if (index === 0) {
        keys.push(settings.keys.idempotency + input.idempotencyKey)
        index = keys.length
        keyIndex.set(input.idempotencyKey, index)
      }
    }
    args.push(input.topic, input.type ?? "message", input.data, String(index))
  }
  return Effect.flatMap(
    runScript(client, APPEND, keys, args, settings.commandTimeoutMillis),
    (reply) => parse(() => appended(reply, inputs))
  )
}

const appended = (reply: unknown, inputs: ReadonlyArray<Event.EventInput>): ReadonlyArray<Event.Event> => {
  const [epochReply, , seqsReply, timesReply, repeatsReply] = arr(reply)
  const epoch = str(epochReply)
  const seqs = arr(seqsReply)
  const times = arr(timesReply)
  const out: Array<Event.Event> = new Array(inputs.length)
  const repeats = new Map<number, ReadonlyArray<unknown>>()
  for (const repeat of arr(repeatsReply)) {
    const r = arr(repeat)
    repeats.set(int(r[0]), r)
  }
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i]!
    const stored = repeats.get(i)
    const id = { epoch, seq: int(seqs[i]) }
    out[i] = stored !== undefined && stored[1] === 1
      ? new EventRecord(id, str(stored[2]), str(stored[3]), str(stored[4]), int(times[i]))
      : new EventRecord(id, input.topic, input.type ?? "message", input.data, int(times[i]))
  }
  return out
}

const read = (
  client: Client,
  settings: Settings,
  after: number,
  options: EventLog.ReadOptions
): Effect.Effect<EventLog.ReadPage, EventLog.EventLogError> => {
  const limit = Math.max(1, Math.floor(options.limit))
  const filter = options.filter
  // With a filter, read more than `limit` entries per round trip: most may not match.
  const count = Math.min(MAX_PAGE, filter === undefined ? limit : Math.max(limit, 256))
  const upTo = options.upTo === undefined ? -1 : Math.max(0, Math.floor(options.upTo))
  const args = [epochToken(), String(Math.max(0, Math.floor(after))), String(upTo), String(count)]
  return Effect.flatMap(
    runScript(client, READ, [settings.keys.meta, settings.keys.stream], args, settings.commandTimeoutMillis),
    (reply) =>
      Effect.flatMap(parse(() => arr(reply)), ([epoch, , , earliest, expired, bound, entries]) => {
        if (expired === 1) {
          return Effect.fail(
            new EventLogError({
              reason: "Expired",
              message: `events after seq ${after} are no longer retained (earliest is ${str(earliest)})`
            })
          )
        }
        return parse(() => page(str(epoch), after, int(bound), arr(entries), count, limit, filter))
      })
  )
}

const page = (
  epoch: string,
  after: number,
  upTo: number,
  entries: ReadonlyArray<unknown>,
  count: number,
  limit: number,
  filter: ((event: Event.Event) => boolean) | undefined
): EventLog.ReadPage => {
  const events: Array<Event.Event> = []
  let cursor = after
  for (const entry of entries) {
    const event = toEvent(epoch, entry)
    cursor = event.id.seq
    if (filter === undefined || filter(event)) {
      events.push(event)
      if (events.length >= limit) return { events, cursor }
    }
  }
  // Fewer entries than asked for: the range is read to its end.
  return { events, cursor: entries.length < count ? Math.max(after, upTo) : cursor }
}

/**
 * The tail reader's loop: a session on a fresh dedicated connection until it fails, then a capped,
 * jittered backoff, forever (until the layer's scope closes).
 */
const runTail = (
  tail: Tail,
  settings: Settings,
  meta: (on: Client) => Effect.Effect<Meta, EventLog.EventLogError>
): Effect.Effect<never> => {
  const session = Effect.scoped(Effect.gen(function*() {
    const conn = yield* connect({ url: settings.url, name: "sluice-tail", connectTimeoutMillis: settings.connectTimeoutMillis, reconnect: false })
    tail.sync(yield* meta(conn))
    tail.failures = 0
    while (true) yield* tailStep(tail, settings, conn, meta)
  }))
  return session.pipe(
    Effect.catchAll(() =>
      Effect.flatMap(Random.next, (random) => Effect.sleep(Duration.millis(backoffMillis(tail.failures++, random))))
    ),
    Effect.forever
  )
}

const tailStep = (
  tail: Tail,
  settings: Settings,
  conn: Client,
  meta: (on: Client) => Effect.Effect<Meta, EventLog.EventLogError>
): Effect.Effect<void, EventLog.EventLogError> =>
  Effect.gen(function*() {
    // Always from the last delivered id, never `$`: `$` after a timeout would skip what was added in between.
    const reply = yield* send(
      conn,
      ["XREAD", "COUNT", String(TAIL_COUNT), "BLOCK", String(settings.blockMillis), "STREAMS", settings.keys.stream, `${tail.m}-${tail.position}`],
      settings.blockMillis + settings.commandTimeoutMillis
    )
    tail.failures = 0
    // Nothing new for a whole block: check the epoch (a flushed log may restart below our position).
    if (reply === null) return tail.sync(yield* meta(conn))
    const entries = yield* parse(() => arr(arr(arr(reply)[0])[1]))
    const epoch = tail.epoch!
    const batch: Array<Event.Event> = []
    for (const entry of entries) {
      const id = yield* parse(() => splitId(str(arr(entry)[0])))
      // Another epoch's ids sort after ours: deliver what we have, then adopt the new epoch.
      if (id[0] !== tail.m) {
        tail.deliver(batch)
        return tail.sync(yield* meta(conn))
      }
      const expected = tail.position + batch.length + 1
      if (id[1] !== expected) {
        tail.deliver(batch.splice(0))
        yield* fillGap(tail, settings, conn, id[1])
      }
      batch.push(yield* parse(() => toEvent(epoch, entry)))
    }
    tail.deliver(batch)
  })

/**
 * Entries before `seq` that the read skipped: delivered from `XRANGE` when Redis still has them all,
 * otherwise they were trimmed before this node read them, and the followers reset.
 */
const fillGap = (tail: Tail, settings: Settings, conn: Client, seq: number): Effect.Effect<void, EventLog.EventLogError> =>
  Effect.gen(function*() {
    const from = tail.position
    const reply = yield* send(
      conn,
      ["XRANGE", settings.keys.stream, `(${tail.m}-${from}`, `${tail.m}-${seq - 1}`],
      settings.commandTimeoutMillis
    )
    const epoch = tail.epoch!
    const events = yield* parse(() => arr(reply).map((entry) => toEvent(epoch, entry)))
    if (events.length === seq - 1 - from && (events.length === 0 || events[0]!.id.seq === from + 1)) {
      tail.deliver(events)
    } else {
      tail.reset({ epoch, seq: seq - 1 }, tail.m)
    }
  })
