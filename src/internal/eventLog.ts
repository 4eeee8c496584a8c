/** @internal */
import { randomBytes } from "node:crypto"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Event from "../Event.js"
import type * as EventLog from "../EventLog.js"
import { EventLogError } from "./errors.js"
import { EventRecord, validateIdempotencyKey } from "./event.js"
import { frameSizeOf } from "./sse.js"

/** @internal */
export const newEpoch = (): string => {
  // 50 random bits rendered in base 36: ~10 characters of [0-9a-z]
  const bytes = randomBytes(8)
  const n = (BigInt(bytes.readUInt32BE(0) & 0x3ffff) << 32n) | BigInt(bytes.readUInt32BE(4))
  return n.toString(36)
}

/**
 * What one retained event may cost the log: its data, its SSE frame (encoded once and kept with the
 * event for every writer and replay: a line break in the data becomes a 7-byte `data: ` line, so a
 * frame can be several times the data), its topic and type, and 64 bytes for the record itself.
 * @internal
 */
export const eventSize = (event: Event.Event): number =>
  Buffer.byteLength(event.data, "utf8") + frameSizeOf(event) + event.topic.length + event.type.length + 64

/**
 * A bounded in-memory ring: every operation is synchronous, so `append` and the notification of
 * followers happen in one step and no reader can observe a state in between.
 * @internal
 */
export class MemoryLog {
  readonly epoch: string
  private readonly capacity: number
  private readonly maxBytes: number
  private readonly ring: Array<Event.Event | undefined>
  private readonly sizes: Array<number>
  private start = 0
  private count = 0
  private bytes = 0
  private headSeq = 0
  private readonly followers = new Set<(events: ReadonlyArray<Event.Event>) => void>()
  /** Idempotency keys in append order, so in expiry order: the oldest are pruned first. */
  private readonly keys = new Map<string, { readonly event: Event.Event; readonly expires: number }>()
  private readonly windowMillis: number

  constructor(
    options: { readonly maxEvents: number; readonly maxBytes: number; readonly epoch: string; readonly windowMillis?: number }
  ) {
    this.capacity = options.maxEvents
    this.maxBytes = options.maxBytes
    this.epoch = options.epoch
    this.windowMillis = options.windowMillis ?? 5 * 60_000
    this.ring = new Array(this.capacity)
    this.sizes = new Array(this.capacity).fill(0)
  }

  get head(): number {
    return this.headSeq
  }

  get earliest(): number {
    return this.count === 0 ? this.headSeq + 1 : this.headSeq - this.count + 1
  }

  get retainedBytes(): number {
    return this.bytes
  }

  /**
   * Appends a batch. An input whose idempotency key was appended within the window is not appended
   * again: its slot in the result holds the first event. Followers see only what was appended.
   */
  append(inputs: ReadonlyArray<Event.EventInput>, time: number): ReadonlyArray<Event.Event> {
    if (this.keys.size > 0) this.pruneKeys(time)
    const out: Array<Event.Event> = new Array(inputs.length)
    let appended: Array<Event.Event> | undefined = undefined
    for (let i = 0; i < inputs.length; i++) {
      const input = inputs[i]!
      const key = input.idempotencyKey
      const prior = key === undefined ? undefined : this.keys.get(key)
      if (prior !== undefined) {
        out[i] = prior.event
        // every slot before the first repeat was appended
        appended ??= out.slice(0, i)
        continue
      }
      const event = new EventRecord({ epoch: this.epoch, seq: ++this.headSeq }, input.topic, input.type ?? "message", input.data, time)
      this.push(event, eventSize(event))
      if (key !== undefined) this.keys.set(key, { event, expires: time + this.windowMillis })
      out[i] = event
      if (appended !== undefined) appended.push(event)
    }
    const fresh = appended ?? out
    if (fresh.length > 0) for (const follower of this.followers) follower(fresh)
    return out
  }

  private pruneKeys(now: number): void {
    for (const [key, entry] of this.keys) {
      if (entry.expires > now) break
      this.keys.delete(key)
    }
  }

  private push(event: Event.Event, size: number): void {
    if (this.count === this.capacity) this.evictOldest()
    const index = (this.start + this.count) % this.capacity
    this.ring[index] = event
    this.sizes[index] = size
    this.count++
    this.bytes += size
    while (this.bytes > this.maxBytes && this.count > 1) this.evictOldest()
  }

  private evictOldest(): void {
    this.bytes -= this.sizes[this.start]!
    this.ring[this.start] = undefined
    this.sizes[this.start] = 0
    this.start = (this.start + 1) % this.capacity
    this.count--
  }

  read(after: number, options: EventLog.ReadOptions): EventLog.ReadPage | "expired" {
    const upTo = Math.min(options.upTo ?? this.headSeq, this.headSeq)
    if (after >= upTo) return { events: [], cursor: Math.max(after, upTo) }
    const earliest = this.earliest
    if (after + 1 < earliest) return "expired"
    const filter = options.filter
    const limit = Math.max(1, options.limit)
    const events: Array<Event.Event> = []
    let seq = after
    let index = (this.start + (after + 1 - earliest)) % this.capacity
    while (seq < upTo) {
      seq++
      const event = this.ring[index]!
      index = index + 1 === this.capacity ? 0 : index + 1
      if (filter === undefined || filter(event)) {
        events.push(event)
        if (events.length >= limit) break
      }
    }
    return { events, cursor: seq }
  }

  follow(listener: (events: ReadonlyArray<Event.Event>) => void): () => void {
    this.followers.add(listener)
    return () => {
      this.followers.delete(listener)
    }
  }
}

/** @internal */
export const makeMemory = (
  options?: EventLog.MemoryOptions
): Effect.Effect<EventLog.EventLog["Type"], ConfigError.ConfigError> =>
  Effect.try({
    try: () => memoryLog(options),
    catch: (e) => ConfigError.InvalidData(["EventLog"], `EventLog option ${e instanceof Error ? e.message : String(e)}`)
  }).pipe(Effect.map(serviceOf))

const memoryLog = (options: EventLog.MemoryOptions | undefined): MemoryLog =>
  new MemoryLog({
    maxEvents: positive("maxEvents", options?.maxEvents, 10_000),
    maxBytes: positive("maxBytes", options?.maxBytes, 64 * 1024 * 1024),
    epoch: options?.epoch ?? newEpoch(),
    windowMillis: Duration.toMillis(Duration.decode(options?.idempotencyWindow ?? "5 minutes"))
  })

const serviceOf = (log: MemoryLog): EventLog.EventLog["Type"] => {
  const id = (seq: number): Event.EventId => ({ epoch: log.epoch, seq })
  const service: EventLog.EventLog["Type"] = {
    sharesEvents: true,
    epoch: Effect.succeed(log.epoch),
    head: Effect.sync(() => id(log.head)),
    earliest: Effect.sync(() => log.earliest),
    append: (inputs) => {
      const invalid = invalidKey(inputs)
      return invalid !== undefined
        ? Effect.fail(invalid)
        : Effect.clockWith((clock) => Effect.sync(() => log.append(inputs, clock.unsafeCurrentTimeMillis())))
    },
    read: (after, readOptions) =>
      Effect.suspend(() => {
        const page = log.read(after, readOptions)
        return page === "expired"
          ? Effect.fail(
            new EventLogError({
              reason: "Expired",
              message: `events after seq ${after} are no longer retained (earliest is ${log.earliest})`
            })
          )
          : Effect.succeed(page)
      }),
    follow: (listener) =>
      Effect.acquireRelease(
        Effect.sync(() => ({ stop: log.follow(listener), head: id(log.head) })),
        ({ stop }) => Effect.sync(stop)
      ).pipe(Effect.map(({ head }) => head)) as Effect.Effect<Event.EventId, never, Scope.Scope>
  }
  return service
}

/**
 * The typed error for the first input whose idempotency key is invalid, or `undefined`.
 * @internal
 */
export const invalidKey = (inputs: ReadonlyArray<Event.EventInput>): EventLogError | undefined => {
  for (let i = 0; i < inputs.length; i++) {
    const key = inputs[i]!.idempotencyKey
    if (key === undefined) continue
    const problem = validateIdempotencyKey(key)
    if (problem !== undefined) {
      return new EventLogError({ reason: "InvalidInput", message: inputs.length > 1 ? `${problem} (event ${i})` : problem })
    }
  }
  return undefined
}

const positive = (name: string, value: number | undefined, fallback: number): number => {
  if (value === undefined) return fallback
  if (!Number.isFinite(value) || value < 1) throw new RangeError(`${name} must be a positive number, got ${value}`)
  return Math.floor(value)
}
