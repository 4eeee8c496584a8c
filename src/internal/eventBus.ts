/** @internal */
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as ConfigError from "effect/ConfigError"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberId from "effect/FiberId"
import { identity } from "effect/Function"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Event from "../Event.js"
import type * as EventBus from "../EventBus.js"
import type * as EventLog from "../EventLog.js"
import { PublishError, SubscribeError } from "./errors.js"
import {
  compileTopics,
  formatId,
  parseId,
  validateData,
  validateIdempotencyKey,
  validatePattern,
  validateTopic,
  validateType
} from "./event.js"
import * as metrics from "./metrics.js"
import { fits, Replay } from "./replay.js"
import { frameOf, frameSizeOf } from "./sse.js"
import { TopicIndex } from "./topicIndex.js"

type Taken = readonly [Chunk.Chunk<Event.Event>, boolean]
const ENDED: Taken = [Chunk.empty(), true]

/**
 * One subscriber's bounded buffer and lifecycle state. Everything here is plain, synchronous JS:
 * the fan-out loop touches it without any fiber, and a consumer drains it with `take`.
 * @internal
 */
export class Subscriber {
  /** Position in its fan-out list (`Hub.everyTopic` or its matcher's `subs`), -1 once out of it. */
  index = -1
  buffer: Array<Event.Event> = []
  bytes = 0
  endReason: EventBus.EndReason | undefined = undefined
  closed = false
  /** `buffer` is a batch array shared with other subscribers: copy it before pushing. */
  shared = false
  /**
   * Its consumer writes the encoded frames (an SSE connection): the fan-out then sizes an event by
   * encoding it, once, instead of measuring it and encoding it later.
   */
  encodes = false
  /** Called (synchronously, from the fan-out or from `end`) when events arrived or the subscriber ended. */
  notify: (() => void) | undefined = undefined
  drains = 0
  seenDrains = 0
  stalledSince: number | undefined = undefined
  /** The resume's replay, read page by page before anything live; `undefined` once done. */
  replay: Replay | undefined = undefined
  /**
   * How many more live events a replay may drop and read again from the log (its `maxReplay`): a
   * live buffer that fills while the replay is still being written catches up from the log instead
   * of ending the subscriber, until this runs out.
   */
  catchUpLeft = 0
  /** The resume's first scan of the log is under way (its replay is not made yet). */
  resuming = false
  /** Created on first `await`: most subscriptions (every SSE connection) never need it. */
  private endedDeferred: Deferred.Deferred<EventBus.EndReason> | undefined = undefined

  /** Topics and filter together: what the replay tests each event with (the fan-out finds topics through the index). */
  readonly match: ((event: Event.Event) => boolean) | undefined
  /** Consumed by a writer chosen at construction (an SSE connection), not by `takeAll` / `events`. */
  readonly external: boolean

  constructor(
    readonly hub: Hub,
    /** The shared matcher of this subscriber's topic set; `undefined` for every topic. */
    readonly topics: TopicMatcher | undefined,
    /** The caller's predicate, if any (it may throw: the slow path guards it). */
    readonly filter: ((event: Event.Event) => boolean) | undefined,
    readonly maxEvents: number,
    readonly maxBytes: number,
    /** A non-empty buffer not drained for this long (ms) ends the subscriber as `stalled`. */
    readonly stallTimeout: number,
    /** Live events with `seq <= floor` are skipped: the replay covers them. */
    public floor: number,
    consumer?: Consumer
  ) {
    this.external = consumer !== undefined
    if (consumer !== undefined) {
      this.encodes = consumer.encodes
      this.notify = consumer.onReady
    }
    const test = topics?.test
    this.match = test === undefined ? filter : filter === undefined ? test : (event) => test(event) && filter(event)
  }

  /**
   * Raises the floor and drops buffered events at or below it: a resume found the client ahead of
   * this node's fan-out (a shared log), and live events may have arrived while it asked the log.
   */
  raiseFloor(floor: number): void {
    if (floor <= this.floor) return
    this.floor = floor
    const buffer = this.buffer
    if (buffer.length === 0 || buffer[0]!.id.seq > floor) return
    const kept = buffer.filter((event) => event.id.seq > floor)
    let bytes = 0
    for (const event of kept) bytes += this.encodes ? encodedSize(event) : frameSizeOf(event)
    this.hub.bufferedEvents -= buffer.length - kept.length
    this.hub.bufferedBytes -= this.bytes - bytes
    this.buffer = kept
    this.shared = false
    this.bytes = bytes
  }

  /** Completes with the end reason once ended. */
  get ended(): Deferred.Deferred<EventBus.EndReason> {
    let deferred = this.endedDeferred
    if (deferred === undefined) {
      deferred = this.endedDeferred = Deferred.unsafeMake<EventBus.EndReason>(FiberId.none)
      if (this.endReason !== undefined) Deferred.unsafeDone(deferred, Effect.succeed(this.endReason))
    }
    return deferred
  }

  /**
   * Hands every buffered event to the consumer (possibly an empty array). The array may be shared
   * with other subscribers: read it, never mutate it.
   */
  take(): ReadonlyArray<Event.Event> {
    const batch = this.buffer
    if (batch.length === 0) return batch
    this.buffer = []
    this.shared = false
    this.hub.bufferedEvents -= batch.length
    this.hub.bufferedBytes -= this.bytes
    this.bytes = 0
    this.drains++
    this.hub.countDelivered(batch.length)
    return batch
  }

  /** Ends the subscription: no further events are accepted; what is buffered stays to be drained. */
  end(reason: EventBus.EndReason): void {
    if (this.endReason !== undefined) return
    this.endReason = reason
    this.hub.deactivate(this)
    this.hub.countEnd(reason)
    if (this.endedDeferred !== undefined) Deferred.unsafeDone(this.endedDeferred, Effect.succeed(reason))
    const notify = this.notify
    if (notify !== undefined) notify()
  }

  /** How many events the buffer holds. */
  get buffered(): number {
    return this.buffer.length
  }

  /** The replay still to deliver, if any (a finished one is dropped here). */
  get replaying(): Replay | undefined {
    const replay = this.replay
    if (replay !== undefined && replay.done) this.replay = undefined
    return this.replay
  }

  /** A consumer delivered `n` replayed events: counted, and progress for the stall sweep. */
  delivered(n: number): void {
    this.drains++
    this.hub.countDelivered(n)
  }

  /**
   * The live buffer is full while the replay is still being delivered (a resume behind a fast log):
   * drop the buffer and read on from the log up to `upTo` instead (the log has every event the
   * fan-out saw), so the subscriber keeps moving rather than ending with nothing new delivered.
   * `skipped` counts the batch's events from the one that did not fit on (the raised floor skips
   * them too): with the buffer, they are spent from the allowance, so one large batch cannot extend
   * the replay past `maxReplay`. False, leaving everything as it is, when there is no replay or its
   * `maxReplay` allowance is spent.
   * The hub's buffered counts are settled by the caller (`push` counts against the buffer it found).
   */
  catchUp(upTo: number, skipped: number): boolean {
    // `replay`, not `replaying`: a replay whose last page its consumer still writes (or has not yet
    // moved past) is extended too; the consumer reads on before anything live either way.
    const replay = this.replay
    const dropped = this.buffer.length + skipped
    if (replay === undefined && !this.resuming) return false
    if (dropped > this.catchUpLeft || upTo <= this.floor) return false
    this.catchUpLeft -= dropped
    this.buffer = []
    this.shared = false
    this.bytes = 0
    this.floor = upTo // during the first scan, the replay is made to read up to here
    replay?.extend(upTo)
    return true
  }

  /** Drops what the buffer holds (after a replay that could not finish, it would follow a gap). */
  discard(): void {
    this.hub.bufferedEvents -= this.buffer.length
    this.hub.bufferedBytes -= this.bytes
    this.buffer = []
    this.shared = false
    this.bytes = 0
  }

  /**
   * The replay could not continue (the log failed, or the bus's replay budget is in use): what is
   * buffered would follow a gap, so it is dropped and the subscription ends as `unavailable`; the
   * consumer resumes from the last event it got.
   */
  replayFailed(reason: EventBus.EndReason = "unavailable"): void {
    this.abandonReplay()
    this.end(reason)
  }

  /** Drops the rest of the replay and what is buffered behind it (it would follow a gap). */
  abandonReplay(): void {
    this.replay?.close()
    this.replay = undefined
    this.discard()
  }

  /** Releases everything the subscription holds; runs from the scope finalizer. */
  close(): void {
    if (this.closed) return
    this.end("closed")
    this.closed = true
    this.discard()
    this.replay?.close()
    this.replay = undefined
    this.notify = undefined
    this.hub.remove(this)
    if (this.topics !== undefined) this.hub.releaseMatcher(this.topics)
  }
}

/**
 * The compiled topic set of one or more subscribers. Every subscriber with the same set shares one
 * matcher, so the fan-out filters a batch once per set and hands the same read-only result to each.
 * The hub's topic index finds the matchers an event reaches, so a batch costs nothing for a set it
 * does not touch.
 * @internal
 */
export class TopicMatcher {
  refs = 0
  /** The batch (`Hub.batches`) that `events` was picked for; `events` is emptied once delivered. */
  batch = -1
  events: Array<Event.Event> = NONE
  /** The byte size of `events`, -1 until a subscriber takes them whole. */
  bytes = -1
  /** The last event (`Hub.stamps`) added to `events`: an event reached through two patterns is added once. */
  stamp = -1
  /** Its subscribers still accepting events: the fan-out list of this set. */
  readonly subs: Array<Subscriber> = []
  constructor(
    readonly key: string,
    /** The distinct patterns, as indexed. */
    readonly patterns: ReadonlyArray<string>,
    readonly test: (event: Event.Event) => boolean
  ) {}
}

/** The empty `events` of a matcher between batches (never pushed to: a batch starts a fresh array). */
const NONE: Array<Event.Event> = []

/**
 * The fan-out registry. `onEvents` is the log's follower: it runs synchronously for every appended
 * batch, in log order, and never waits for a subscriber.
 * @internal
 */
export class Hub {
  constructor(readonly maxReplayBytes: number, readonly metrics: metrics.BusMetrics) {}
  /** The subscribers to every topic still accepting events: every batch visits each of them. */
  readonly everyTopic: Array<Subscriber> = []
  readonly all = new Set<Subscriber>()
  /** Subscribers of raw consumers (the SSE route's connections) among `all`. */
  external = 0
  private readonly matchers = new Map<string, TopicMatcher>()
  /** Every live matcher under each of its patterns: the fan-out visits only the sets a batch touches. */
  private readonly index = new TopicIndex<TopicMatcher>()
  /** Counts fan-out batches, to tell a matcher's share of this batch from an old one. */
  private batches = 0
  /** Counts fanned-out events, to add an event once to a set it reaches through several patterns. */
  private stamps = 0
  /** Fan-outs in progress, and the subscribers that ended during them (taken out of their lists after). */
  private fanning = 0
  private readonly leaving: Array<Subscriber> = []
  position = 0
  epoch = ""
  /** The log's follower runs: until then the bus refuses publishes and subscriptions. */
  following = false
  shuttingDown = false
  bufferedEvents = 0
  bufferedBytes = 0
  /** Replay bytes held in pages across every subscription (see `Replay`). */
  replayBytes = 0
  published = 0
  delivered = 0
  readonly ends: Record<EventBus.EndReason, number> = {
    overflow: 0,
    stalled: 0,
    shutdown: 0,
    lifetime: 0,
    unavailable: 0,
    closed: 0,
    "log-reset": 0
  }
  readonly resumes: Record<EventBus.ResumeStat, number> = {
    live: 0,
    resumed: 0,
    "epoch-mismatch": 0,
    expired: 0,
    "too-far-behind": 0,
    future: 0,
    invalid: 0
  }

  /** Batches that arrived during a fan-out (a filter or a consumer's callback published): fanned out after it. */
  private queued: Array<ReadonlyArray<Event.Event>> | undefined = undefined

  /** Fans a batch out, in log order: one appended during a fan-out waits for it to finish. */
  readonly onEvents = (events: ReadonlyArray<Event.Event>): void => {
    if (this.fanning > 0) {
      ;(this.queued ??= []).push(events)
      return
    }
    this.fanOut(events)
    while (this.queued !== undefined) {
      const queued = this.queued
      this.queued = undefined
      for (const batch of queued) this.fanOut(batch)
    }
  }

  private fanOut(events: ReadonlyArray<Event.Event>): void {
    const n = events.length
    if (n === 0) return
    this.position = events[n - 1]!.id.seq
    this.published += n
    this.metrics.published(n)
    const everyTopic = this.everyTopic
    if (everyTopic.length === 0 && this.index.empty) return
    // Each subscriber is complete once its turn ends, so it is notified right then; a notification
    // only schedules work (a fiber resume, a writer flush) and never re-enters the fan-out. A
    // subscriber that ends meanwhile (overflow, a throwing filter, or any `end` a filter causes)
    // stays in its list until the batch is done: the loops skip it, and no list is reordered under them.
    this.fanning++
    try {
      const batch = ++this.batches
      if (everyTopic.length > 0) this.fanToEveryTopic(events)
      if (!this.index.empty) this.fanByTopic(events, batch)
    } finally {
      if (--this.fanning === 0 && this.leaving.length > 0) this.leave()
    }
  }

  /**
   * The subscribers to every topic: one without a predicate and with an empty buffer takes the batch
   * as one read-only array (a private copy of it, made once and shared), in O(1); others take the slow path.
   */
  private fanToEveryTopic(events: ReadonlyArray<Event.Event>): void {
    const everyTopic = this.everyTopic
    const firstSeq = events[0]!.id.seq
    let shared: Array<Event.Event> | undefined = undefined
    let sharedBytes = 0
    for (let j = 0; j < everyTopic.length; j++) {
      const sub = everyTopic[j]!
      if (sub.endReason !== undefined) continue
      if (sub.filter === undefined && sub.buffer.length === 0 && sub.floor < firstSeq) {
        if (shared === undefined) {
          shared = events.slice()
          const sizeOf = sub.encodes ? encodedSize : frameSizeOf
          for (let i = 0; i < shared.length; i++) sharedBytes += sizeOf(shared[i]!)
        }
        if (this.share(sub, shared, sharedBytes)) continue
      }
      this.push(sub, events)
    }
  }

  /**
   * Picks, in log order, each topic set's share of the batch through the index (one event once per
   * set, however many of its patterns match), then hands every touched set's share to its subscribers.
   * Sets the batch does not touch cost nothing.
   */
  private fanByTopic(events: ReadonlyArray<Event.Event>, batch: number): void {
    const touched: Array<TopicMatcher> = []
    let event = events[0]!
    let stamp = 0
    const pick = (matcher: TopicMatcher): void => {
      if (matcher.stamp === stamp) return
      matcher.stamp = stamp
      if (matcher.batch !== batch) {
        matcher.batch = batch
        matcher.events = []
        matcher.bytes = -1
        touched.push(matcher)
      }
      matcher.events.push(event)
    }
    for (let i = 0; i < events.length; i++) {
      event = events[i]!
      stamp = ++this.stamps
      this.index.forEach(event.topic, pick)
    }
    for (let t = 0; t < touched.length; t++) {
      const matcher = touched[t]!
      const group = matcher.events
      const subs = matcher.subs
      for (let j = 0; j < subs.length; j++) {
        const sub = subs[j]!
        if (sub.endReason === undefined) this.offerGroup(sub, matcher, group)
      }
      matcher.events = NONE // delivered: the matcher holds no event between batches
    }
  }

  /**
   * A subscriber with topics: without a predicate and with an empty buffer it takes its set's share
   * as the same read-only array as every other such subscriber of the set, else the slow path over
   * the share.
   */
  private offerGroup(sub: Subscriber, matcher: TopicMatcher, group: Array<Event.Event>): void {
    if (sub.filter === undefined && sub.buffer.length === 0 && sub.floor < group[0]!.id.seq) {
      if (matcher.bytes < 0) {
        const sizeOf = sub.encodes ? encodedSize : frameSizeOf
        let bytes = 0
        for (let i = 0; i < group.length; i++) bytes += sizeOf(group[i]!)
        matcher.bytes = bytes
      }
      if (this.share(sub, group, matcher.bytes)) return
    }
    this.push(sub, group)
  }

  /** Hands a read-only array to an empty buffer, if it fits the caps. */
  private share(sub: Subscriber, group: Array<Event.Event>, bytes: number): boolean {
    if (group.length > sub.maxEvents || bytes > sub.maxBytes) return false
    sub.buffer = group
    sub.shared = true
    sub.bytes = bytes
    this.bufferedEvents += group.length
    this.bufferedBytes += bytes
    const notify = sub.notify
    if (notify !== undefined) notify()
    return true
  }

  /**
   * The slow path: appends each event past the floor that the subscriber's filter accepts (the
   * events already match its topics), ending it as `overflow` at a cap.
   */
  private push(sub: Subscriber, events: ReadonlyArray<Event.Event>): void {
    const beforeEvents = sub.buffer.length
    const beforeBytes = sub.bytes
    const filter = sub.filter
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!
      if (event.id.seq <= sub.floor) continue
      if (filter !== undefined && !safeFilter(sub, filter, event)) {
        if (sub.endReason !== undefined) break // the filter threw and ended it
        continue
      }
      const size = sub.encodes ? encodedSize(event) : frameSizeOf(event)
      if (sub.buffer.length >= sub.maxEvents || sub.bytes + size > sub.maxBytes) {
        if (!sub.catchUp(events[events.length - 1]!.id.seq, events.length - i)) sub.end("overflow")
        break
      }
      if (sub.shared) {
        sub.buffer = sub.buffer.slice()
        sub.shared = false
      }
      sub.buffer.push(event)
      sub.bytes += size
    }
    this.bufferedEvents += sub.buffer.length - beforeEvents
    this.bufferedBytes += sub.bytes - beforeBytes
    if (sub.endReason === undefined && sub.buffer.length > beforeEvents) {
      const notify = sub.notify
      if (notify !== undefined) notify()
    }
  }

  /** The shared matcher of a validated topic set, or `undefined` when it matches every topic. */
  acquireMatcher(patterns: ReadonlyArray<string>): TopicMatcher | undefined {
    if (patterns.length === 0) return undefined
    const distinct = Array.from(new Set(patterns)).sort()
    const key = distinct.join("\n")
    let matcher = this.matchers.get(key)
    if (matcher === undefined) {
      const topicMatch = compileTopics(distinct)
      if (topicMatch === undefined) return undefined
      matcher = new TopicMatcher(key, distinct, (event) => topicMatch(event.topic))
      this.matchers.set(key, matcher)
      for (const pattern of distinct) this.index.add(pattern, matcher)
    }
    matcher.refs++
    return matcher
  }

  releaseMatcher(matcher: TopicMatcher): void {
    if (--matcher.refs > 0) return
    this.matchers.delete(matcher.key)
    for (const pattern of matcher.patterns) this.index.delete(pattern, matcher)
    matcher.events = NONE
  }

  register(sub: Subscriber): void {
    const list = this.listOf(sub)
    sub.index = list.length
    list.push(sub)
    this.all.add(sub)
    if (sub.external) this.external++
    this.metrics.gauge(metrics.subscribers, this.all.size)
  }

  /** Takes an ended subscriber out of the fan-out (after the batch, if one is being fanned out). */
  deactivate(sub: Subscriber): void {
    if (sub.index < 0) return
    if (this.fanning > 0) this.leaving.push(sub)
    else this.unlist(sub)
  }

  /** The fan-out list a subscriber sits in. */
  private listOf(sub: Subscriber): Array<Subscriber> {
    return sub.topics === undefined ? this.everyTopic : sub.topics.subs
  }

  private unlist(sub: Subscriber): void {
    const i = sub.index
    if (i < 0) return
    const list = this.listOf(sub)
    const last = list.pop()!
    if (last !== sub) {
      list[i] = last
      last.index = i
    }
    sub.index = -1
  }

  /** Takes out the subscribers that ended during a fan-out. */
  private leave(): void {
    const leaving = this.leaving
    for (let i = 0; i < leaving.length; i++) this.unlist(leaving[i]!)
    leaving.length = 0
  }

  remove(sub: Subscriber): void {
    if (this.all.delete(sub) && sub.external) this.external--
    this.metrics.gauge(metrics.subscribers, this.all.size)
  }

  countEnd(reason: EventBus.EndReason): void {
    this.ends[reason]++
    this.metrics.end(reason)
  }

  countResume(outcome: EventBus.ResumeStat): void {
    this.resumes[outcome]++
    this.metrics.resume(outcome)
  }

  /** Plain counting on the hot path; the Effect counter catches up in `syncGauges` (sweep, stats). */
  countDelivered(n: number): void {
    this.delivered += n
  }

  private reportedDelivered = 0

  syncGauges(): void {
    const delivered = this.delivered - this.reportedDelivered
    if (delivered > 0) {
      this.reportedDelivered = this.delivered
      this.metrics.delivered(delivered)
    }
    this.metrics.gauge(metrics.bufferedEvents, this.bufferedEvents)
    this.metrics.gauge(metrics.bufferedBytes, this.bufferedBytes)
    this.metrics.gauge(metrics.subscribers, this.all.size)
    this.metrics.gauge(metrics.sseConnections, this.external)
  }

  /** One pass of the stall detector: ends subscribers whose non-empty buffer saw no drain for their timeout. */
  sweep(now: number): void {
    for (const sub of this.all) {
      if (sub.endReason !== undefined) continue
      if (sub.buffer.length === 0 || sub.drains !== sub.seenDrains) {
        sub.seenDrains = sub.drains
        sub.stalledSince = undefined
      } else if (sub.stalledSince === undefined) {
        sub.stalledSince = now
      } else if (now - sub.stalledSince >= sub.stallTimeout) {
        sub.end("stalled")
      }
    }
    this.syncGauges()
  }

  /**
   * The log's follower lost continuity (a new epoch, or events trimmed before it read them): every
   * subscriber ends with `log-reset`, so its client resumes and learns the outcome from the log;
   * fan-out continues after `head`.
   */
  readonly onReset = (head: Event.EventId): void => {
    // A replay still to read would read the new log with an old cursor: abandon it (and what is
    // buffered behind it) as well.
    for (const sub of Array.from(this.all)) {
      if (sub.replay !== undefined) sub.replayFailed("log-reset")
      else sub.end("log-reset")
    }
    this.epoch = head.epoch
    this.position = head.seq
  }

  shutdown(): void {
    this.shuttingDown = true
    for (const sub of Array.from(this.all)) sub.end("shutdown")
  }
}

const encodedSize = (event: Event.Event): number => frameOf(event).byteLength

const safeFilter = (sub: Subscriber, filter: (event: Event.Event) => boolean, event: Event.Event): boolean => {
  try {
    return filter(event)
  } catch {
    // A throwing filter must not break the fan-out for anyone else: end only this subscriber.
    sub.end("closed")
    return false
  }
}

/** @internal */
export const SubscriberKey: unique symbol = Symbol.for("sluice/EventBus/Subscriber") as never

/**
 * The subscriber behind a public subscription, for the bus's own wrappers (an eager stream closes
 * it early) and for tests and benchmarks that inspect buffers. The SSE route never reaches through
 * a subscription: it subscribes with {@link rawSubscribe}.
 * @internal
 */
export const inspectSubscriber = (subscription: EventBus.Subscription): Subscriber =>
  (subscription as unknown as Record<typeof SubscriberKey, Subscriber>)[SubscriberKey]

/**
 * The consumer a raw subscription is made for, chosen at construction: it is told (synchronously,
 * from the fan-out or an end) when events arrived or the subscriber ended, and nothing else may
 * consume the subscriber.
 * @internal
 */
export interface Consumer {
  /** It writes encoded frames: the fan-out sizes events by encoding them, once. */
  readonly encodes: boolean
  readonly onReady: () => void
}

/** What a raw consumer may do with its subscriber. @internal */
export type SubscriberHandle = Pick<
  Subscriber,
  "take" | "end" | "close" | "endReason" | "buffered" | "replaying" | "delivered" | "replayFailed" | "abandonReplay"
>

/** A subscription made for one raw consumer (the SSE writer). @internal */
export interface RawSubscription {
  readonly outcome: EventBus.ResumeOutcome
  readonly subscriber: SubscriberHandle
}

type RawSubscribe = <A>(
  options: EventBus.SubscribeOptions,
  consumer: Consumer,
  adopt: (subscription: RawSubscription) => A
) => Effect.Effect<A, SubscribeError>

const rawSubscribers = new WeakMap<object, RawSubscribe>()

/** Keeps a subscriber for the caller's scope: closed when it closes. */
const scoped = (acquire: Effect.Effect<Subscriber>): Effect.Effect<Subscriber, never, Scope.Scope> =>
  Effect.acquireRelease(acquire, (s) => Effect.sync(() => s.close()))

/** Whether the bus was made by this module (it has a raw side for the SSE route). @internal */
export const hasRawSide = (bus: EventBus.EventBus["Type"]): boolean => rawSubscribers.has(bus)

/** The raw side of a bus, kept by a wrapper of it (telemetry). @internal */
export const keepRaw = (from: EventBus.EventBus["Type"], to: EventBus.EventBus["Type"]): EventBus.EventBus["Type"] => {
  const raw = rawSubscribers.get(from)
  if (raw !== undefined) rawSubscribers.set(to, raw)
  return to
}

/**
 * Subscribes for a raw consumer on a bus this module made, and hands the subscriber to `adopt`
 * (synchronous, run uninterruptibly once the subscription is made): from then on the caller owns
 * it and must `close` it. No scope holds it, so it can outlive the request that opened it; a start
 * that fails or is interrupted closes it. A bus made elsewhere has no raw side: that is a defect with
 * a clear message.
 * @internal
 */
export const rawSubscribe = <A>(
  bus: EventBus.EventBus["Type"],
  options: EventBus.SubscribeOptions,
  consumer: Consumer,
  adopt: (subscription: RawSubscription) => A
): Effect.Effect<A, SubscribeError> => {
  const raw = rawSubscribers.get(bus)
  return raw === undefined
    ? Effect.dieMessage("SseRoute needs a bus made by EventBus.make / EventBus.layer")
    : raw(options, consumer, adopt)
}

/**
 * The public face of a subscriber. Its consumer side (`takeAll`, `events`, `ended`, `end`) is built
 * on first use and shared: an SSE connection, drained by the route's writer, never builds any of it.
 * @internal
 */
class SubscriptionImpl {
  readonly [SubscriberKey]: Subscriber
  /** The parked consumer's resume; one consumer at a time. */
  private waiting: ((effect: Effect.Effect<Taken>) => void) | undefined = undefined
  private takeAllEffect: Effect.Effect<Taken> | undefined = undefined
  private eventsStream: Stream.Stream<Event.Event> | undefined = undefined
  private endedEffect: Effect.Effect<EventBus.EndReason> | undefined = undefined
  private endFn: ((reason: EventBus.EndReason) => Effect.Effect<void>) | undefined = undefined

  constructor(
    sub: Subscriber,
    readonly outcome: EventBus.ResumeOutcome,
    readonly replay: ReadonlyArray<Event.Event>
  ) {
    this[SubscriberKey] = sub
  }

  /** What is ready to hand over, or `undefined` when the consumer has to wait. */
  private poll(): Taken | undefined {
    const sub = this[SubscriberKey]
    const batch = sub.take()
    const ended = sub.endReason !== undefined
    if (batch.length > 0) return [Chunk.unsafeFromArray(batch as Array<Event.Event>), ended]
    return ended ? ENDED : undefined
  }

  /** The next replay page, before anything live; then the live path again. */
  private replayStep(replay: Replay, next: Effect.Effect<Taken>): Effect.Effect<Taken> {
    const sub = this[SubscriberKey]
    return Effect.matchEffect(replay.next, {
      onFailure: () => {
        sub.replayFailed()
        return next
      },
      onSuccess: (page) => {
        if (page === undefined) {
          if (sub.replay === replay) sub.replay = undefined
          return next
        }
        page.release()
        sub.delivered(page.events.length)
        return Effect.succeed<Taken>([Chunk.unsafeFromArray(page.events as Array<Event.Event>), false])
      }
    })
  }

  get takeAll(): Effect.Effect<Taken> {
    let takeAll = this.takeAllEffect
    if (takeAll !== undefined) return takeAll
    // Everything on the wake path is allocated here, once, not per wake. The fan-out wakes the
    // parked consumer through `sub.notify`.
    const sub = this[SubscriberKey]
    const wake = () => {
      const resume = this.waiting
      if (resume === undefined) return
      this.waiting = undefined
      if (sub.notify === wake) sub.notify = undefined
      resume(takeAll!)
    }
    const cancelWait = Effect.sync(() => {
      this.waiting = undefined
      if (sub.notify === wake) sub.notify = undefined
    })
    const parked = Effect.async<Taken>((resume) => {
      if (this.waiting !== undefined) {
        return resume(Effect.dieMessage("a subscription has one consumer at a time: takeAll is already waiting"))
      }
      // Anything that arrived between the last poll and this registration found no `notify` to
      // call, so look again before sleeping (no lost wake-up).
      const ready = this.poll()
      if (ready !== undefined) return resume(Effect.succeed(ready))
      this.waiting = resume
      sub.notify = wake
      return cancelWait
    })
    takeAll = this.takeAllEffect = Effect.suspend(() => {
      if (sub.external) return Effect.dieMessage("this subscription is consumed by its writer, not by takeAll")
      const replay = sub.replay
      if (replay !== undefined) return this.replayStep(replay, takeAll!)
      const ready = this.poll()
      return ready === undefined ? parked : Effect.succeed(ready)
    })
    return takeAll
  }

  get events(): Stream.Stream<Event.Event> {
    let events = this.eventsStream
    if (events !== undefined) return events
    // A hand-written channel over the same buffer: it costs a fraction of
    // `Stream.repeatEffectChunkOption` per chunk, which dominates at high fan-out.
    const pull: Channel.Channel<Chunk.Chunk<Event.Event>> = Channel.flatMap(
      Channel.fromEffect(this.takeAll),
      ([chunk, ended]) =>
        ended
          ? Chunk.isEmpty(chunk) ? Channel.void : Channel.write(chunk)
          : Channel.zipRight(Channel.write(chunk), pull)
    )
    events = this.eventsStream = Stream.fromChannel(pull)
    return events
  }

  get ended(): Effect.Effect<EventBus.EndReason> {
    return this.endedEffect ??= Deferred.await(this[SubscriberKey].ended)
  }

  get end(): (reason: EventBus.EndReason) => Effect.Effect<void> {
    const sub = this[SubscriberKey]
    return this.endFn ??= (reason) => Effect.sync(() => sub.end(reason))
  }
}

const positiveInt = (name: string, value: number | undefined, fallback: number): number => {
  if (value === undefined) return fallback
  if (!Number.isFinite(value) || value < 1) throw new RangeError(`${name} must be a positive number, got ${value}`)
  return Math.floor(value)
}

/** A subscription's limits with the bus's defaults applied, or what is wrong with them. */
const subscribeLimits = (
  options: EventBus.SubscribeOptions | undefined,
  config: ReturnType<typeof resolveOrThrow>
): { maxEvents: number; maxBytes: number; maxReplay: number; stallTimeout: number } | string => {
  try {
    const stallTimeout = options?.stallTimeout === undefined
      ? config.stallTimeout
      : Duration.toMillis(Duration.decode(options.stallTimeout))
    if (!(stallTimeout > 0)) return `stallTimeout must be a positive duration, got ${String(options?.stallTimeout)}`
    return {
      maxEvents: positiveInt("maxEvents", options?.maxEvents, config.maxEvents),
      maxBytes: positiveInt("maxBytes", options?.maxBytes, config.maxBytes),
      maxReplay: positiveInt("maxReplay", options?.maxReplay, config.maxReplay),
      stallTimeout
    }
  } catch (e) {
    return e instanceof Error ? e.message : String(e)
  }
}

/** @internal */
export const resolveOptions = (options: EventBus.Options | undefined) =>
  Either.try({
    try: () => resolveOrThrow(options),
    catch: (e) => ConfigError.InvalidData(["EventBus"], `EventBus option ${e instanceof Error ? e.message : String(e)}`)
  })

const resolveOrThrow = (options: EventBus.Options | undefined) => ({
  name: busName(options?.name),
  maxEvents: positiveInt("maxEvents", options?.maxEvents, 1_000),
  maxBytes: positiveInt("maxBytes", options?.maxBytes, 1024 * 1024),
  maxReplay: positiveInt("maxReplay", options?.maxReplay, 1_000),
  maxEventBytes: positiveInt("maxEventBytes", options?.maxEventBytes, 1024 * 1024),
  maxReplayBytes: positiveInt("maxReplayBytes", options?.maxReplayBytes, 64 * 1024 * 1024),
  stallTimeout: positiveMillis("stallTimeout", options?.stallTimeout ?? "30 seconds")
})

const busName = (name: string | undefined): string => {
  if (name === undefined) return "default"
  if (typeof name !== "string" || !/^[\x21-\x7e]{1,100}$/.test(name)) {
    throw new RangeError(`name must be 1 to 100 printable ASCII characters without spaces, got ${JSON.stringify(name)}`)
  }
  return name
}

const positiveMillis = (name: string, input: Duration.DurationInput): number => {
  const decoded = Duration.decodeUnknown(input)
  const ms = Option.isSome(decoded) ? Duration.toMillis(decoded.value) : Number.NaN
  if (!(ms > 0) || !Number.isFinite(ms)) throw new RangeError(`${name} must be a positive duration, got ${String(input)}`)
  return ms
}

/** @internal */
export const make = (
  options: EventBus.Options | undefined,
  log: EventLog.EventLog["Type"]
): Effect.Effect<EventBus.EventBus["Type"], ConfigError.ConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* resolveOptions(options)
    const busMetrics = yield* Effect.acquireRelease(
      Effect.sync(() => new metrics.BusMetrics(config.name)),
      (m) => Effect.sync(() => m.release())
    )
    const hub = new Hub(config.maxReplayBytes, busMetrics)
    busMetrics.refresh = Effect.asVoid(statsOf(hub, log))
    yield* startFollowing(hub, log)

    yield* Effect.addFinalizer(() => Effect.sync(() => hub.shutdown()))

    const sweepEvery = Math.min(1_000, Math.max(10, Math.floor(config.stallTimeout / 4)))
    yield* Clock.currentTimeMillis.pipe(
      Effect.flatMap((now) => Effect.sync(() => hub.sweep(now))),
      Effect.repeat(Schedule.spaced(Duration.millis(sweepEvery))),
      Effect.interruptible,
      Effect.forkScoped
    )

    const publishAll = (inputs: Iterable<Event.EventInput>) =>
      Effect.suspend(() => {
        const batch = Array.isArray(inputs) ? inputs as ReadonlyArray<Event.EventInput> : Array.from(inputs)
        if (batch.length === 0) return Effect.succeed<ReadonlyArray<Event.Event>>([])
        const invalid = validate(batch, config.maxEventBytes)
        if (invalid !== undefined) return Effect.fail(invalid)
        if (!hub.following) return Effect.fail(new PublishError({ reason: "Unavailable", message: NOT_FOLLOWING }))
        return Effect.mapError(log.append(batch), (cause) =>
          new PublishError({ reason: "Unavailable", message: cause.message, cause }))
      })

    /**
     * `hold` keeps the new subscriber (in the caller's scope, or not at all for a raw consumer) and
     * `restore` makes the wait for the log interruptible when the caller runs this uninterruptibly.
     */
    const register = <R>(
      subscribeOptions: EventBus.SubscribeOptions | undefined,
      consumer: Consumer | undefined,
      hold: (acquire: Effect.Effect<Subscriber>) => Effect.Effect<Subscriber, never, R>,
      restore: <A, E, R2>(effect: Effect.Effect<A, E, R2>) => Effect.Effect<A, E, R2> = identity
    ) =>
      Effect.gen(function*() {
        const topics = subscribeOptions?.topics ?? []
        for (const topic of topics) {
          const error = validatePattern(topic)
          if (error !== undefined) {
            return yield* Effect.fail(
              new SubscribeError({ reason: "InvalidTopic", message: `${error}: ${JSON.stringify(topic).slice(0, 80)}` })
            )
          }
        }
        const limits = subscribeLimits(subscribeOptions, config)
        if (typeof limits === "string") {
          return yield* Effect.fail(new SubscribeError({ reason: "InvalidOption", message: limits }))
        }
        if (!hub.following) return yield* Effect.fail(new SubscribeError({ reason: "Unavailable", message: NOT_FOLLOWING }))
        const { maxBytes, maxEvents, maxReplay, stallTimeout } = limits

        // Register first: from this synchronous step on, every event after `position` reaches the buffer.
        const sub = yield* hold(
          Effect.sync(() => {
            const s = new Subscriber(
              hub,
              hub.acquireMatcher(topics),
              subscribeOptions?.filter,
              maxEvents,
              maxBytes,
              stallTimeout,
              hub.position,
              consumer
            )
            hub.register(s)
            if (hub.shuttingDown) s.end("shutdown")
            return s
          })
        )
        const position = sub.floor
        const head: Event.EventId = { epoch: hub.epoch, seq: position }

        sub.resuming = subscribeOptions?.after !== undefined
        sub.catchUpLeft = maxReplay
        // A start that fails or is interrupted releases its registration now, not when the caller's scope closes.
        const resolved = yield* restore(
          resolveResume(log, hub, subscribeOptions?.after, position, head, maxReplay, maxBytes, sub.match)
        ).pipe(
          Effect.tapError((e) => Effect.sync(() => e.reason === "Unavailable" && sub.end("unavailable"))),
          Effect.onError(() => Effect.sync(() => sub.close()))
        )
        hub.countResume(resolved.outcome._tag === "Reset" ? resolved.outcome.reason : resolved.outcome._tag === "Resumed" ? "resumed" : "live")
        sub.resuming = false
        // A live buffer that filled during the scan was dropped and the floor raised: read on to it.
        const upTo = Math.max(position, sub.floor)
        sub.raiseFloor(resolved.floor)
        const replay = new Replay(hub, log, sub.match, resolved.replayCursor, upTo, maxBytes)
        replay.hold(resolved.replay, resolved.replayBytes, resolved.replayCursor)
        // Only a replay with something to deliver is attached: `catchUp` extends an attached one.
        if (!replay.done) sub.replay = replay
        return { sub, outcome: resolved.outcome, firstPage: resolved.replay }
      })

    const subscribe = (subscribeOptions?: EventBus.SubscribeOptions) =>
      Effect.map(
        register(subscribeOptions, undefined, scoped),
        ({ firstPage, outcome, sub }): EventBus.Subscription => new SubscriptionImpl(sub, outcome, firstPage)
      )

    const service: EventBus.EventBus["Type"] = {
      publish: (input) => Effect.map(publishAll([input]), (events) => events[0]!),
      publishAll,
      subscribe,
      stream: (streamOptions) => Effect.map(subscribe(streamOptions), streamOf),
      streamLazy: (streamOptions) => Stream.unwrapScoped(Effect.map(subscribe(streamOptions), (s) => s.events)),
      stats: statsOf(hub, log),
      shutdown: Effect.sync(() => hub.shutdown())
    }
    rawSubscribers.set(service, (options, consumer, adopt) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.map(register(options, consumer, identity, restore), ({ outcome, sub }) => {
          try {
            return adopt({ outcome, subscriber: sub })
          } catch (defect) {
            sub.close()
            throw defect
          }
        })
      ))
    return service
  })

const NOT_FOLLOWING = "the bus is not following its log yet (the log was unreachable when the bus started); retry"

/**
 * Starts the bus's follower on the log. A log that cannot be followed now (Redis down when the bus
 * starts) does not stop the bus: it refuses publishes and subscriptions with `Unavailable` while a
 * fiber in its scope retries with capped, jittered backoff, and works as soon as the follower runs.
 */
const startFollowing = (hub: Hub, log: EventLog.EventLog["Type"]): Effect.Effect<void, never, Scope.Scope> => {
  const follow = Effect.map(log.follow(hub.onEvents, hub.onReset), (start) => {
    hub.position = start.seq
    hub.epoch = start.epoch
    hub.following = true
  })
  const retry = Schedule.union(Schedule.jittered(Schedule.exponential("100 millis")), Schedule.spaced("5 seconds"))
  return Effect.catchAll(follow, (error) =>
    Effect.logWarning(`the bus cannot follow its log (${error.message}); it retries in the background`).pipe(
      Effect.zipRight(
        follow.pipe(
          Effect.retry(retry),
          Effect.zipRight(Effect.logInfo("the bus follows its log")),
          Effect.interruptible,
          Effect.forkScoped
        )
      ),
      Effect.asVoid
    ))
}

/** Why a batch cannot be published, or `undefined` when every input is valid. */
const validate = (
  inputs: ReadonlyArray<Event.EventInput>,
  maxEventBytes: number
): EventBus.PublishError | undefined => {
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i]!
    const at = inputs.length > 1 ? ` (event ${i})` : ""
    const topicError = validateTopic(input?.topic)
    if (topicError !== undefined) return publishError("InvalidTopic", topicError + at, i)
    if (input.type !== undefined) {
      const typeError = validateType(input.type)
      if (typeError !== undefined) return publishError("InvalidType", typeError + at, i)
    }
    const dataError = validateData(input.data)
    if (dataError !== undefined) return publishError("InvalidData", dataError + at, i)
    if (input.idempotencyKey !== undefined) {
      const keyError = validateIdempotencyKey(input.idempotencyKey)
      if (keyError !== undefined) return publishError("InvalidIdempotencyKey", keyError + at, i)
    }
    if (input.data.length > maxEventBytes / 3 && Buffer.byteLength(input.data) > maxEventBytes) {
      return publishError("TooLarge", `data is larger than ${maxEventBytes} bytes${at}`, i)
    }
  }
  return undefined
}

/**
 * The outcome of a resume after `after`, with live delivery continuing after `position`: the
 * matching events up to `maxReplay + 1` are counted, and the first page (at most `pageBytes`) kept.
 */
const resolveResume = (
  log: EventLog.EventLog["Type"],
  hub: Hub,
  after: string | Event.EventId | undefined,
  position: number,
  head: Event.EventId,
  maxReplay: number,
  pageBytes: number,
  match: ((event: Event.Event) => boolean) | undefined
): Effect.Effect<Resolved, EventBus.SubscribeError> =>
  Effect.gen(function*() {
    const none = { replay: [] as ReadonlyArray<Event.Event>, replayBytes: 0, replayCursor: position, floor: position }
    const reset = (reason: EventBus.ResetReason, message: string) => ({
      ...none,
      outcome: { _tag: "Reset", reason, head, message } as const
    })
    if (after === undefined) return { ...none, outcome: { _tag: "Live", head } as const }
    // An id object is held to the same rules as a string (a fractional or negative seq would misread the log).
    const parsed = parseId(typeof after === "string" ? after : formatId(after))
    if (Either.isLeft(parsed)) return reset("invalid", parsed.left.message)
    const cursor = parsed.right
    if (cursor.epoch !== hub.epoch) {
      return reset("epoch-mismatch", `cursor epoch ${cursor.epoch} is not the log's epoch ${hub.epoch}`)
    }
    if (cursor.seq > position) {
      const logHead = yield* Effect.mapError(log.head, unavailable)
      if (cursor.seq > logHead.seq) return reset("future", `cursor ${cursor.seq} is ahead of the head ${logHead.seq}`)
      // This node's fan-out lags the log: live delivery skips what the client already has.
      return { ...none, floor: cursor.seq, replayCursor: cursor.seq, outcome: { _tag: "Resumed", head, after: cursor } as const }
    }
    if (cursor.seq === position) return { ...none, outcome: { _tag: "Resumed", head, after: cursor } as const }
    // A backend may end a page before `upTo` (see `ReadPage`): continue from its cursor until the range is done.
    // Count the matching events up to `maxReplay + 1`, keeping only the first page (the
    // subscriber's byte cap): later pages are read again at the consumer's pace.
    const first: Array<Event.Event> = []
    let firstBytes = 0
    let firstCursor = cursor.seq
    let full = false // the first page is complete: keep counting, stop keeping
    let count = 0
    let scanned = cursor.seq
    while (scanned < position && count <= maxReplay) {
      const page = yield* log.read(scanned, { limit: maxReplay + 1 - count, upTo: position, filter: match }).pipe(
        Effect.map((p): EventLog.ReadPage | undefined => p),
        Effect.catchTag("EventLogError", (e) => e.reason === "Expired" ? Effect.succeed(undefined) : Effect.fail(unavailable(e)))
      )
      if (page === undefined) return reset("expired", `events after ${cursor.seq} are older than the log retains`)
      if (page.cursor <= scanned) {
        return yield* Effect.fail(
          new SubscribeError({ reason: "Unavailable", message: `the log's read after ${scanned} made no progress` })
        )
      }
      count += page.events.length
      for (const event of page.events) {
        if (full) break
        const size = frameSizeOf(event)
        if (first.length > 0 && firstBytes + size > pageBytes) {
          full = true
        } else {
          first.push(event)
          firstBytes += size
          firstCursor = event.id.seq
        }
      }
      if (!full) firstCursor = page.cursor
      scanned = page.cursor
    }
    if (count > maxReplay) {
      return reset("too-far-behind", `more than ${maxReplay} events were published after the cursor`)
    }
    if (first.length > 0 && log.sharesEvents !== true && !fits(hub, firstBytes)) {
      return yield* Effect.fail(
        new SubscribeError({
          reason: "Unavailable",
          message: `the bus's replay budget (${hub.maxReplayBytes} bytes) is in use; retry later`
        })
      )
    }
    return { replay: first, replayBytes: firstBytes, replayCursor: firstCursor, floor: position, outcome: { _tag: "Resumed", head, after: cursor } as const }
  })

/** A snapshot of the bus's counters (the log's head and earliest read now). */
const statsOf = (hub: Hub, log: EventLog.EventLog["Type"]): Effect.Effect<EventBus.Stats> =>
  Effect.gen(function*() {
    const logHead = yield* Effect.either(log.head)
    const earliest = yield* Effect.either(log.earliest)
    hub.syncGauges()
    if (Either.isRight(logHead)) {
      hub.metrics.gauge(metrics.logHead, logHead.right.seq)
      if (logHead.right.epoch === hub.epoch) hub.metrics.gauge(metrics.logLag, Math.max(0, logHead.right.seq - hub.position))
    }
    if (Either.isRight(earliest)) hub.metrics.gauge(metrics.logEarliest, earliest.right)
    return {
      name: hub.metrics.name,
      subscribers: hub.all.size,
      bufferedEvents: hub.bufferedEvents,
      bufferedBytes: hub.bufferedBytes,
      replayBytes: hub.replayBytes,
      published: hub.published,
      delivered: hub.delivered,
      ends: { ...hub.ends },
      resumes: { ...hub.resumes },
      log: {
        epoch: hub.epoch,
        head: Either.isRight(logHead) ? logHead.right.seq : hub.position,
        earliest: Either.isRight(earliest) ? earliest.right : undefined,
        position: hub.position
      }
    }
  })

interface Resolved {
  readonly outcome: EventBus.ResumeOutcome
  /** The replay's first page, and where the scan that found it stopped. */
  readonly replay: ReadonlyArray<Event.Event>
  readonly replayBytes: number
  readonly replayCursor: number
  readonly floor: number
}

const publishError = (reason: PublishError["reason"], message: string, index: number) =>
  new PublishError({ reason, message, index })

const unavailable = (cause: EventLog.EventLogError) =>
  new SubscribeError({ reason: "Unavailable", message: cause.message, cause })

/**
 * The eager `stream`: the subscription is already registered in the caller's scope; the stream
 * also ends it (`closed`) when it stops early, so a finished consumer stops buffering at once.
 * @internal
 */
export const streamOf = (subscription: EventBus.Subscription): Stream.Stream<Event.Event> =>
  Stream.ensuring(subscription.events, Effect.sync(() => inspectSubscriber(subscription).close()))
