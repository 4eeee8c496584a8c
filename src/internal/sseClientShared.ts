/** @internal */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Event from "../Event.js"
import type * as SseClient from "../SseClient.js"
import type * as SseClientShared from "../SseClientShared.js"
import { parseId } from "./event.js"
import { decodeItems, onlyItems, SseClientError, streamWithStatus as ownStream } from "./sseClient.js"

/** One item as the leader hands it out; `fresh`: the frame carried an id of its own (only those are de-duplicated). */
interface Entry {
  readonly item: SseClient.Item
  readonly fresh: boolean
}

/** What a leader broadcasts: a term (one per leadership), the id it resumed from, and items or its terminal error. */
interface Envelope {
  readonly term: string
  readonly from: string
  readonly entries: ReadonlyArray<Entry>
  readonly failure?: { readonly reason: SseClient.SseClientErrorReason; readonly status?: number | undefined; readonly message: string }
}

/** What the tab's single processing loop reads: envelopes (its own with its statuses) and hold expiries. */
type Input =
  | { readonly _tag: "Envelope"; readonly envelope: Envelope; readonly statuses?: ReadonlyArray<Status> }
  | { readonly _tag: "Expire"; readonly term: string }

type Status = SseClient.Status | SseClientShared.Leading
type Output = SseClient.Item | Status

/** A term held back because its leader resumed after this tab's last id. */
interface Held {
  readonly from: Event.EventId
  readonly envelopes: Array<Envelope>
}

const sluiceId = (id: string): Event.EventId | undefined => id === "" ? undefined : Either.getOrUndefined(parseId(id))

/**
 * What one tab has seen, fed every envelope (its own leader's and the others') in arrival order. It
 * keeps the last id (the cursor this tab resumes from when it becomes the leader), drops items whose
 * sluice id is not after the last within the same epoch, and holds back a new leader's items while
 * that leader resumed after this tab's last id: the old leader's last items are then still on
 * their way here, and they come first. Pure: the tests drive it directly.
 * @internal
 */
export class Tracker {
  /** The cursor: the last id received (`""`: none). */
  id: string
  /** Items dropped as duplicates. */
  dropped = 0
  private last: Event.EventId | undefined
  private readonly accepted = new Set<string>()
  private readonly held = new Map<string, Held>()

  constructor(lastEventId: string | undefined) {
    this.id = lastEventId ?? ""
    this.last = sluiceId(this.id)
  }

  /** A term whose items are taken without waiting (this tab's own leadership). */
  own(term: string): void {
    this.accepted.add(term)
  }

  /** The terms waiting for the old leader's items. */
  get waiting(): ReadonlyArray<string> {
    return [...this.held.keys()]
  }

  /** The items of `envelope` this tab must deliver, in order (held ones come out once they may). */
  receive(envelope: Envelope): Array<SseClient.Item> {
    const out: Array<SseClient.Item> = []
    if (!this.accepted.has(envelope.term)) {
      const held = this.held.get(envelope.term)
      if (held !== undefined) {
        held.envelopes.push(envelope)
        return out
      }
      const from = sluiceId(envelope.from)
      const last = this.last
      if (from !== undefined && last !== undefined && from.epoch === last.epoch && from.seq > last.seq) {
        this.held.set(envelope.term, { from, envelopes: [envelope] })
        return out
      }
      this.accepted.add(envelope.term)
    }
    this.take(envelope, out)
    this.release(out)
    return out
  }

  /**
   * Gives up waiting for the old leader's items of `term`: a {@link SseClient.Reset} (this tab may
   * have missed events up to the new leader's start), then the held items.
   */
  expire(term: string): Array<SseClient.Item> {
    const held = this.held.get(term)
    const out: Array<SseClient.Item> = []
    if (held === undefined) return out
    this.held.delete(term)
    this.accepted.add(term)
    const head = held.envelopes[0]!.from
    out.push({
      _tag: "Reset",
      reason: "leader-changed",
      head,
      message: `the tab that held the connection closed; events up to ${head} may be missing here`
    })
    this.id = head
    this.last = sluiceId(head)
    for (const envelope of held.envelopes) this.take(envelope, out)
    this.release(out)
    return out
  }

  private take(envelope: Envelope, out: Array<SseClient.Item>): void {
    for (const { fresh, item } of envelope.entries) {
      if (item._tag === "Reset") {
        this.id = item.head
        this.last = sluiceId(item.head)
        out.push(item)
        continue
      }
      if (fresh) {
        const id = sluiceId(item.id)
        const last = this.last
        if (id !== undefined && last !== undefined && id.epoch === last.epoch && id.seq <= last.seq) {
          this.dropped++
          continue
        }
        this.last = id
        this.id = item.id
      }
      out.push(item)
    }
  }

  /** Lets out the held terms this tab has now caught up with. */
  private release(out: Array<SseClient.Item>): void {
    for (const [term, held] of this.held) {
      const last = this.last
      if (last === undefined || last.epoch !== held.from.epoch || last.seq >= held.from.seq) {
        this.held.delete(term)
        this.accepted.add(term)
        for (const envelope of held.envelopes) this.take(envelope, out)
        return this.release(out)
      }
    }
  }
}

/** The parts of the Web Locks API used here (not in the ES lib this package compiles against). */
interface Locks {
  request(name: string, options: { readonly signal: AbortSignal }, grant: () => Promise<void>): Promise<void>
}

const locks = (): Locks | undefined => (globalThis as { navigator?: { locks?: Locks } }).navigator?.locks

/** The parts of `BroadcastChannel` used here (Node's and the DOM's differ in their types). */
interface Channel {
  postMessage(message: Envelope): void
  close(): void
  onmessage: ((event: { readonly data: Envelope }) => void) | null
}

const channels = (): (new(name: string) => Channel) | undefined =>
  (globalThis as unknown as { BroadcastChannel?: new(name: string) => Channel }).BroadcastChannel

/** The lock and channel name: the absolute URL and the sorted topic set. @internal */
export const keyOf = (url: string | URL, options: SseClientShared.Options | undefined): string => {
  if (options?.key !== undefined) return options.key
  const base = (globalThis as { location?: { href?: string } }).location?.href
  let href: string
  try {
    href = new URL(url, base).href
  } catch {
    href = String(url)
  }
  const topics = [...(options?.topics ?? [])].sort()
  return `sluice/SseClient ${href} ${JSON.stringify(topics)}`
}

/**
 * Holds the Web Lock `name` for the current scope, once granted. The wait is interruptible: an
 * interrupted request is aborted, and a lock granted meanwhile is released by the scope.
 */
const holdLock = (api: Locks, name: string): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    let release: (() => void) | undefined
    yield* Effect.addFinalizer(() => Effect.sync(() => release?.()))
    yield* Effect.async<void>((resume, signal) => {
      api.request(name, { signal }, () =>
        new Promise<void>((done) => {
          release = done
          resume(Effect.void)
        })).catch(() => {}) // aborted: this tab's stream ended before the lock came
    })
  })

const randomTerm = (): string => `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`

/** This tab's leadership: once the lock is granted, the connection, broadcast and fed to this tab too. */
const lead = (
  api: Locks,
  key: string,
  url: string | URL,
  options: SseClientShared.Options | undefined,
  tracker: Tracker,
  channel: Channel,
  inputs: Queue.Queue<Input>
): Effect.Effect<void, never, HttpClient.HttpClient> =>
  Effect.scoped(Effect.gen(function*() {
    yield* holdLock(api, key)
    const term = randomTerm()
    tracker.own(term)
    const from = tracker.id
    let previous = from
    const send = (envelope: Envelope, statuses: ReadonlyArray<Status>) => {
      if (envelope.entries.length > 0 || envelope.failure !== undefined) channel.postMessage(envelope)
      return Queue.offer(inputs, { _tag: "Envelope", envelope, statuses })
    }
    yield* send({ term, from, entries: [] }, [{ _tag: "Leading", lastEventId: from }])
    yield* ownStream(url, { ...options, lastEventId: from === "" ? undefined : from }).pipe(
      Stream.runForEachChunk((chunk) => {
        const entries: Array<Entry> = []
        const statuses: Array<Status> = []
        for (const item of chunk) {
          if (item._tag === "Message") {
            entries.push({ item, fresh: item.id !== previous })
            previous = item.id
          } else if (item._tag === "Reset") {
            entries.push({ item, fresh: true })
            previous = item.head
          } else {
            statuses.push(item)
          }
        }
        return send({ term, from, entries }, statuses)
      }),
      Effect.catchAll((error) =>
        send({ term, from, entries: [], failure: { reason: error.reason, status: error.status, message: error.message } }, [])
      )
    )
  }))

/** Sentinel in the output: the leader failed with a terminal error; nothing after it is delivered. */
class Failed {
  constructor(readonly error: SseClientError) {}
}

/** @internal */
export const streamWithStatus = <A = string, E = never, R = never>(
  url: string | URL,
  options?: SseClientShared.Options & { readonly decode?: SseClient.Decode<A, E, R> | undefined }
): Stream.Stream<SseClient.Item<A> | Status, SseClientError | E, HttpClient.HttpClient | R> => {
  const api = locks()
  const Channel = channels()
  const { decode, ...rest } = options ?? {}
  const shared: Stream.Stream<Output, SseClientError, HttpClient.HttpClient> =
    api === undefined || Channel === undefined
      ? ownStream(url, rest)
      : Stream.unwrapScoped(Effect.gen(function*() {
        const key = keyOf(url, options)
        const handover = Duration.toMillis(Duration.decode(options?.handoverTimeout ?? "5 seconds"))
        const tracker = new Tracker(options?.lastEventId)
        const inputs = yield* Effect.acquireRelease(Queue.unbounded<Input>(), Queue.shutdown)
        const channel = yield* Effect.acquireRelease(
          Effect.sync(() => new Channel(key)),
          (channel) => Effect.sync(() => channel.close())
        )
        channel.onmessage = (event) => {
          Queue.unsafeOffer(inputs, { _tag: "Envelope", envelope: event.data })
        }
        yield* Effect.forkScoped(lead(api, key, url, rest, tracker, channel, inputs))
        const scope = yield* Effect.scope
        const process = (input: Input): Effect.Effect<Array<Output | Failed>> =>
          Effect.gen(function*() {
            if (input._tag === "Expire") return tracker.expire(input.term)
            const { envelope } = input
            const waiting = tracker.waiting.length
            const out: Array<Output | Failed> = [...(input.statuses ?? []), ...tracker.receive(envelope)]
            if (tracker.waiting.length > waiting) {
              // A new leader resumed after this tab's last id: wait (bounded) for the old one's last items.
              yield* Effect.forkIn(
                Effect.zipRight(Effect.sleep(handover), Queue.offer(inputs, { _tag: "Expire", term: envelope.term })),
                scope
              )
            }
            if (envelope.failure !== undefined) out.push(new Failed(new SseClientError(envelope.failure)))
            return out
          })
        return Stream.fromQueue(inputs).pipe(
          Stream.mapEffect(process),
          Stream.mapConcat((out) => out),
          Stream.takeUntil((item) => item instanceof Failed),
          Stream.mapEffect((item) => item instanceof Failed ? Effect.fail(item.error) : Effect.succeed(item))
        )
      }))
  return decodeItems(shared, decode)
}

/** @internal */
export const stream = <A = string, E = never, R = never>(
  url: string | URL,
  options?: SseClientShared.Options & { readonly decode?: SseClient.Decode<A, E, R> | undefined }
): Stream.Stream<SseClient.Item<A>, SseClientError | E, HttpClient.HttpClient | R> =>
  onlyItems(streamWithStatus(url, options))
