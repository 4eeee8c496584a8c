/**
 * A resume's replay, read from the log page by page as its consumer takes it, never copied whole.
 * A page holds at most the subscriber's byte cap (and at least one event); while a page is held,
 * its bytes count against a budget shared by the whole bus, so many resumes of large events cannot
 * together hold more than the budget.
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Event from "../Event.js"
import type * as EventLog from "../EventLog.js"
import { frameSizeOf } from "./sse.js"

/** How many events one read asks the log for; the page is then cut to its byte bound. */
const PAGE_EVENTS = 256

/** The bus-wide account of replay bytes held in pages. @internal */
export interface ReplayBudget {
  replayBytes: number
  readonly maxReplayBytes: number
}

/** One page handed to a consumer; `release` it once its events are delivered (once is enough). @internal */
export class ReplayPage {
  private released = false
  constructor(
    private readonly budget: ReplayBudget,
    readonly events: ReadonlyArray<Event.Event>,
    readonly bytes: number
  ) {
    budget.replayBytes += bytes
  }

  release(): void {
    if (this.released) return
    this.released = true
    this.budget.replayBytes -= this.bytes
  }
}

/** Why the next page could not be read. @internal */
export type ReplayFailure = "unavailable" | "overloaded"

/** @internal */
export class Replay {
  private held: ReplayPage | undefined = undefined
  private released = false

  private readonly budget: ReplayBudget

  constructor(
    budget: ReplayBudget,
    private readonly log: EventLog.EventLog["Type"],
    private readonly match: ((event: Event.Event) => boolean) | undefined,
    /** The scan has covered every seq up to here. */
    private cursor: number,
    /** The replay ends at this seq (the live position when the subscriber registered, or later: `extend`). */
    private upTo: number,
    readonly maxPageBytes: number
  ) {
    this.budget = log.sharesEvents === true ? FREE : budget
  }

  /** Reads on to `upTo` (a catch-up: the live events up to there were dropped, the log has them). */
  extend(upTo: number): void {
    if (upTo > this.upTo) this.upTo = upTo
  }

  /** Nothing held and nothing left to read. */
  get done(): boolean {
    return this.held === undefined && this.cursor >= this.upTo
  }

  /** Holds a page found by the resume's first scan, accounted against the budget. */
  hold(events: ReadonlyArray<Event.Event>, bytes: number, cursor: number): void {
    this.cursor = cursor
    if (events.length === 0) return
    this.held = new ReplayPage(this.budget, events, bytes)
  }

  /** The page held from the resume's first scan, taken without running an effect; `undefined` if none. */
  takeHeld(): ReplayPage | undefined {
    const held = this.held
    this.held = undefined
    return held
  }

  /**
   * The next page: the held one, or one read from the log. `undefined` when the replay is done.
   * The caller owns the page and must release it.
   */
  readonly next: Effect.Effect<ReplayPage | undefined, ReplayFailure> = Effect.suspend(() => {
    const held = this.held
    if (held !== undefined) {
      this.held = undefined
      return Effect.succeed(held)
    }
    if (this.cursor >= this.upTo || this.released) return Effect.succeed(undefined)
    return this.read()
  })

  private read(): Effect.Effect<ReplayPage | undefined, ReplayFailure> {
    const after = this.cursor
    return this.log.read(after, { limit: PAGE_EVENTS, upTo: this.upTo, filter: this.match }).pipe(
      Effect.mapError((): ReplayFailure => "unavailable"),
      Effect.flatMap((page) => {
        if (page.cursor <= after) return Effect.fail<ReplayFailure>("unavailable")
        const { bytes, count } = cut(page.events, this.maxPageBytes)
        if (this.released) return Effect.succeed(undefined)
        if (count > 0 && !fits(this.budget, bytes)) return Effect.fail<ReplayFailure>("overloaded")
        this.cursor = count < page.events.length ? page.events[count - 1]!.id.seq : page.cursor
        if (count === 0) return this.next
        const events = count < page.events.length ? page.events.slice(0, count) : page.events
        return Effect.succeed(new ReplayPage(this.budget, events, bytes))
      })
    )
  }

  /** Drops whatever is held (the subscription closed). */
  close(): void {
    this.released = true
    this.held?.release()
    this.held = undefined
  }
}

/** The account of pages of a log that shares its events: they cost nothing of their own. */
const FREE: ReplayBudget = { replayBytes: 0, maxReplayBytes: Infinity }

/** Whether `bytes` more fit the bus-wide budget (one page always fits an idle budget). @internal */
export const fits = (budget: ReplayBudget, bytes: number): boolean =>
  budget.replayBytes === 0 || budget.replayBytes + bytes <= budget.maxReplayBytes

/** How many leading events fit in `maxBytes` (at least one), and their frame bytes. @internal */
export const cut = (events: ReadonlyArray<Event.Event>, maxBytes: number): { count: number; bytes: number } => {
  let bytes = 0
  let count = 0
  for (; count < events.length; count++) {
    const size = frameSizeOf(events[count]!)
    if (count > 0 && bytes + size > maxBytes) break
    bytes += size
  }
  return { count, bytes }
}
