/**
 * Classifies what one consumer received against the log that was published: every event of the log
 * must arrive exactly once, in log order.
 *
 * - `lost`: ids of the log that never arrived.
 * - `duplicated`: every extra copy of an id that had already arrived.
 * - `outOfOrder`: ids whose first copy arrived after an id that comes later in the log.
 * - `unknown`: ids that arrived but are not in the log at all.
 */
import * as Event from "../../src/Event.js"

export interface DeliveryReport {
  readonly expected: number
  readonly received: number
  readonly lost: ReadonlyArray<string>
  readonly duplicated: ReadonlyArray<string>
  readonly outOfOrder: ReadonlyArray<string>
  readonly unknown: ReadonlyArray<string>
  readonly ok: boolean
}

type Item = Event.Event | Event.EventId | string

const key = (item: Item): string =>
  typeof item === "string" ? item : "id" in item ? Event.formatId(item.id) : Event.formatId(item)

export const check = (log: ReadonlyArray<Item>, received: ReadonlyArray<Item>): DeliveryReport => {
  const position = new Map<string, number>()
  log.forEach((item, i) => position.set(key(item), i))
  const seen = new Set<string>()
  const duplicated: Array<string> = []
  const outOfOrder: Array<string> = []
  const unknown: Array<string> = []
  let highest = -1
  for (const item of received) {
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
  const lost = Array.from(position.keys()).filter((id) => !seen.has(id))
  return {
    expected: log.length,
    received: received.length,
    lost,
    duplicated,
    outOfOrder,
    unknown,
    ok: lost.length === 0 && duplicated.length === 0 && outOfOrder.length === 0 && unknown.length === 0
  }
}

/** A one-line account of a report, for assertion messages. */
export const describe = (report: DeliveryReport): string => {
  const some = (ids: ReadonlyArray<string>) => `${ids.length}${ids.length > 0 ? ` (${ids.slice(0, 5).join(", ")}…)` : ""}`
  return `expected ${report.expected}, received ${report.received}: lost ${some(report.lost)}, duplicated ${
    some(report.duplicated)
  }, out of order ${some(report.outOfOrder)}, unknown ${some(report.unknown)}`
}
