/** @internal */

/**
 * Finds the values whose topic patterns match a topic without scanning every pattern. Exact topics
 * sit in a map; prefix patterns (`prefix*`, a character prefix as `compileTopics` reads it) sit in a
 * map keyed by the prefix, probed once per distinct prefix length that fits the topic. A lookup
 * therefore costs one probe plus one per distinct prefix length in use (at most 200), whatever the
 * number of patterns or values.
 *
 * A value indexed under several patterns that match one topic is visited once per pattern: the
 * caller tells repeats apart.
 * @internal
 */
export class TopicIndex<V> {
  private readonly exact = new Map<string, Set<V>>()
  private readonly prefixes = new Map<string, Set<V>>()
  /** How many prefixes of each length are indexed. */
  private readonly lengthRefs = new Map<number, number>()
  /** The distinct prefix lengths in use, ascending. */
  private lengths: Array<number> = []

  /** Indexes `value` under a validated pattern: an exact topic, or a prefix ending in `*`. */
  add(pattern: string, value: V): void {
    if (!pattern.endsWith("*")) {
      addTo(this.exact, pattern, value)
      return
    }
    const prefix = pattern.slice(0, -1)
    if (addTo(this.prefixes, prefix, value)) this.countLength(prefix.length, 1)
  }

  /** Removes `value` from under `pattern` (nothing if it was not there). */
  delete(pattern: string, value: V): void {
    if (!pattern.endsWith("*")) {
      deleteFrom(this.exact, pattern, value)
      return
    }
    const prefix = pattern.slice(0, -1)
    if (deleteFrom(this.prefixes, prefix, value)) this.countLength(prefix.length, -1)
  }

  /** Calls `f` for every value under a pattern that matches `topic` (once per matching pattern). */
  forEach(topic: string, f: (value: V) => void): void {
    const exact = this.exact.get(topic)
    if (exact !== undefined) for (const value of exact) f(value)
    const lengths = this.lengths
    for (let i = 0; i < lengths.length; i++) {
      const length = lengths[i]!
      if (length > topic.length) return
      const values = this.prefixes.get(length === topic.length ? topic : topic.slice(0, length))
      if (values !== undefined) for (const value of values) f(value)
    }
  }

  /** Whether nothing is indexed. */
  get empty(): boolean {
    return this.exact.size === 0 && this.prefixes.size === 0
  }

  /** A prefix key of `length` was created (+1) or emptied (-1). */
  private countLength(length: number, delta: 1 | -1): void {
    const refs = (this.lengthRefs.get(length) ?? 0) + delta
    if (refs > 0) {
      this.lengthRefs.set(length, refs)
      if (refs === 1 && delta === 1) this.lengths = [...this.lengths, length].sort((a, b) => a - b)
      return
    }
    this.lengthRefs.delete(length)
    this.lengths = this.lengths.filter((l) => l !== length)
  }
}

/** Adds `value` under `key`; true when the key is new. */
const addTo = <V>(map: Map<string, Set<V>>, key: string, value: V): boolean => {
  const values = map.get(key)
  if (values !== undefined) {
    values.add(value)
    return false
  }
  map.set(key, new Set([value]))
  return true
}

/** Removes `value` from under `key`; true when that emptied the key. */
const deleteFrom = <V>(map: Map<string, Set<V>>, key: string, value: V): boolean => {
  const values = map.get(key)
  if (values === undefined || !values.delete(value) || values.size > 0) return false
  map.delete(key)
  return true
}
