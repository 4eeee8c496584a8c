/** @internal */

/**
 * Finds the values whose topic patterns match a topic without scanning every pattern. Exact topics
 * sit in a map; prefix patterns (`prefix*`, a character prefix as `compileTopics` reads it) sit in a
 * map keyed by the prefix, probed once per distinct prefix length that fits the topic. A lookup
 * therefore costs one probe plus one per distinct prefix length in use (at most 200), whatever the
 * number of patterns or values.
 *
 * A value indexed under several patterns that match one topic is visited once per pattern: the
 * caller tells repeats apart. A key with one value holds it as is (the common case, one subscriber
 * set per topic, then costs no `Set`), so a value must not itself be a `Set`.
 * @internal
 */
export class TopicIndex<V extends object> {
  private readonly exact = new Map<string, Entry<V>>()
  private readonly prefixes = new Map<string, Entry<V>>()
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
    if (exact !== undefined) visit(exact, f)
    const lengths = this.lengths
    for (let i = 0; i < lengths.length; i++) {
      const length = lengths[i]!
      if (length > topic.length) return
      const values = this.prefixes.get(length === topic.length ? topic : topic.slice(0, length))
      if (values !== undefined) visit(values, f)
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

/** The values under one key: one as is, or several in a `Set`. */
type Entry<V> = V | Set<V>

const visit = <V extends object>(entry: Entry<V>, f: (value: V) => void): void => {
  if (entry instanceof Set) for (const value of entry) f(value)
  else f(entry)
}

/** Adds `value` under `key`; true when the key is new. */
const addTo = <V extends object>(map: Map<string, Entry<V>>, key: string, value: V): boolean => {
  const entry = map.get(key)
  if (entry === undefined) {
    map.set(key, value)
    return true
  }
  if (entry instanceof Set) entry.add(value)
  else if (entry !== value) map.set(key, new Set([entry, value]))
  return false
}

/** Removes `value` from under `key`; true when that emptied the key. */
const deleteFrom = <V extends object>(map: Map<string, Entry<V>>, key: string, value: V): boolean => {
  const entry = map.get(key)
  if (entry === value) {
    map.delete(key)
    return true
  }
  if (entry instanceof Set && entry.delete(value) && entry.size === 1) {
    map.set(key, entry.values().next().value as V)
  }
  return false
}
