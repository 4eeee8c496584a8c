/**
 * The delivery checker every suite shares: classifies what one consumer received against the log that
 * was acknowledged (every publish the log answered with an id). Every event of the log must arrive
 * exactly once, in log order.
 *
 * - `lost`: ids of the log that never arrived (and that no reset excuses).
 * - `duplicated`: every extra copy of an id that had already arrived.
 * - `outOfOrder`: ids whose first copy arrived after an id that comes later in the log.
 * - `unknown` (unexpected): ids that arrived but are not in the log at all.
 * - `skippedByReset`: ids that never arrived because the client got an explicit `reset` and the log
 *   could not cover them. Only the reset's gap is excused: the ids after the last one the client had
 *   received before the reset, up to and including the reset's head. They are not `lost`, and they
 *   do not make a report fail, but suites that expect no reset assert that this list is empty.
 *
 * A consumer records a reset by putting {@link reset}`(head)` in its received list where it got it.
 */
import * as Event from "../../src/Event.js"

export interface DeliveryReport {
  readonly expected: number
  readonly received: number
  readonly lost: ReadonlyArray<string>
  readonly duplicated: ReadonlyArray<string>
  readonly outOfOrder: ReadonlyArray<string>
  readonly unknown: ReadonlyArray<string>
  readonly skippedByReset: ReadonlyArray<string>
  /** How many resets the consumer recorded. */
  readonly resets: number
  /** Nothing lost, duplicated, out of order or unknown (ids skipped by a reset do not count). */
  readonly ok: boolean
}

type Item = Event.Event | Event.EventId | string

/** A reset the consumer got, with the id it carried (the log's head then). */
export interface ResetMark {
  readonly _tag: "Reset"
  readonly head: string
}

/** Records a `reset` event in a received list: `head` is its id (`e.lastEventId`). */
export const reset = (head: Item): ResetMark => ({ _tag: "Reset", head: key(head) })

const isReset = (item: Item | ResetMark): item is ResetMark => typeof item === "object" && "_tag" in item && item._tag === "Reset"

const key = (item: Item): string =>
  typeof item === "string" ? item : "id" in item ? Event.formatId(item.id) : Event.formatId(item)

/**
 * The last position of the log a reset's head covers: the head itself, or else the newest event of
 * the head's epoch at or before its sequence number (-1: none, nothing is excused).
 */
const gapEnd = (log: ReadonlyArray<string>, position: ReadonlyMap<string, number>, head: string): number => {
  const exact = position.get(head)
  if (exact !== undefined) return exact
  const parsed = Event.parseId(head)
  if (parsed._tag === "Left") return -1
  for (let i = log.length - 1; i >= 0; i--) {
    const id = Event.parseId(log[i]!)
    if (id._tag === "Right" && id.right.epoch === parsed.right.epoch && id.right.seq <= parsed.right.seq) return i
  }
  return -1
}

export const check = (log: ReadonlyArray<Item>, received: ReadonlyArray<Item | ResetMark>): DeliveryReport => {
  const ids = log.map(key)
  const position = new Map<string, number>()
  ids.forEach((id, i) => position.set(id, i))
  const seen = new Set<string>()
  const excused = new Set<string>()
  const duplicated: Array<string> = []
  const outOfOrder: Array<string> = []
  const unknown: Array<string> = []
  let highest = -1
  let resets = 0
  for (const item of received) {
    if (isReset(item)) {
      resets++
      const end = gapEnd(ids, position, item.head)
      for (let i = highest + 1; i <= end; i++) excused.add(ids[i]!)
      highest = Math.max(highest, end)
      continue
    }
    const id = key(item)
    const at = position.get(id)
    if (at === undefined) {
      unknown.push(id)
      continue
    }
    if (seen.has(id)) {
      duplicated.push(id)
      continue
    }
    seen.add(id)
    if (at < highest) outOfOrder.push(id)
    else highest = at
  }
  const missing = ids.filter((id) => !seen.has(id))
  const lost = missing.filter((id) => !excused.has(id))
  const skippedByReset = missing.filter((id) => excused.has(id))
  return {
    expected: log.length,
    received: received.length - resets,
    lost,
    duplicated,
    outOfOrder,
    unknown,
    skippedByReset,
    resets,
    ok: lost.length === 0 && duplicated.length === 0 && outOfOrder.length === 0 && unknown.length === 0
  }
}

/** A one-line account of a report, for assertion messages. */
export const describe = (report: DeliveryReport): string => {
  const some = (ids: ReadonlyArray<string>) => `${ids.length}${ids.length > 0 ? ` (${ids.slice(0, 5).join(", ")}…)` : ""}`
  return `expected ${report.expected}, received ${report.received}: lost ${some(report.lost)}, duplicated ${
    some(report.duplicated)
  }, out of order ${some(report.outOfOrder)}, unknown ${some(report.unknown)}, skipped by ${report.resets} reset(s) ${
    some(report.skippedByReset)
  }`
}
