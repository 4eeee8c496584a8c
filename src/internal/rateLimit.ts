/**
 * Token buckets per key (a principal or an address) for the publish route. The table is bounded:
 * past `maxKeys` the least recently refilled key is forgotten (it then starts with a full bucket),
 * so a client cycling through addresses cannot grow it.
 * @internal
 */

interface Bucket {
  tokens: number
  at: number
}

/** @internal */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>()

  constructor(
    /** Bucket size: the burst a key may publish at once. */
    private readonly capacity: number,
    /** Milliseconds to earn one token back. */
    private readonly refillMillis: number,
    private readonly maxKeys = 10_000
  ) {}

  /** Takes one token for `key` at `now`; returns 0 when allowed, else the milliseconds until one is earned. */
  take(key: string, now: number): number {
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      bucket = { tokens: this.capacity, at: now }
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!)
    } else {
      this.buckets.delete(key) // re-inserted below: the map's order is least recently used first
      const earned = Math.floor((now - bucket.at) / this.refillMillis)
      if (earned > 0) {
        bucket.tokens = Math.min(this.capacity, bucket.tokens + earned)
        bucket.at = bucket.tokens === this.capacity ? now : bucket.at + earned * this.refillMillis
      }
    }
    this.buckets.set(key, bucket)
    if (bucket.tokens > 0) {
      bucket.tokens--
      return 0
    }
    return Math.max(1, bucket.at + this.refillMillis - now)
  }

  get size(): number {
    return this.buckets.size
  }
}
