/**
 * Authorization decides what a principal may receive, not only whether its request passes: the
 * hook's `Access` becomes a predicate on each event's topic that the bus applies before buffering
 * and on replay, so a wildcard or a request with no topic can never widen what a principal reads.
 * @internal
 */
import type * as SseRoute from "../SseRoute.js"
import { compileTopics, validatePattern } from "./event.js"

/** The access as a predicate on topics (`undefined`: every topic), or why it is malformed. @internal */
export const compileAccess = (access: SseRoute.Access): ((topic: string) => boolean) | undefined | string => {
  if ("all" in access) return undefined
  if ("allows" in access) return access.allows
  for (const pattern of access.topics) {
    const error = validatePattern(pattern)
    if (error !== undefined) return `the authorization hook granted an invalid topic pattern: ${error}`
  }
  // No pattern grants nothing (only `*` grants every topic).
  return access.topics.length === 0 ? () => false : compileTopics(access.topics) ?? (() => true)
}

/** Whether two topic patterns (`a/b`, `a/*`, `*`) can match a common topic. */
const overlaps = (a: string, b: string): boolean => {
  const aWild = a.endsWith("*")
  const bWild = b.endsWith("*")
  const aBase = aWild ? a.slice(0, -1) : a
  const bBase = bWild ? b.slice(0, -1) : b
  if (aWild && bWild) return aBase.startsWith(bBase) || bBase.startsWith(aBase)
  if (aWild) return bBase.startsWith(aBase)
  if (bWild) return aBase.startsWith(bBase)
  return a === b
}

/**
 * Why a subscription to `requested` patterns is refused under `access` (answered `403`), or
 * `undefined` when it may go on (filtered): a concrete topic the principal may not read is refused
 * outright, and so is a request that can match nothing it may read.
 * @internal
 */
export const refuseSubscription = (
  access: SseRoute.Access,
  allows: ((topic: string) => boolean) | undefined,
  requested: ReadonlyArray<string>
): string | undefined => {
  if (allows === undefined) return undefined
  for (const pattern of requested) {
    if (!pattern.endsWith("*") && !allows(pattern)) return `not allowed to read topic ${pattern}`
  }
  if ("topics" in access) {
    const wanted = requested.length === 0 ? ["*"] : requested
    if (!wanted.some((r) => access.topics.some((a) => overlaps(r, a)))) {
      return "none of the requested topics may be read"
    }
  }
  return undefined
}
