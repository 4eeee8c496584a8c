/**
 * Checks one client's delivery of the numbered events `1..expected`: what was lost, duplicated or
 * delivered out of order.
 */
export class DeliveryChecker {
  private readonly counts: Uint16Array
  private highest = 0
  received = 0
  duplicates = 0
  outOfOrder = 0
  distinct = 0

  constructor(readonly expected: number) {
    this.counts = new Uint16Array(expected + 1)
  }

  /**
   * Records the delivery of event number `n` (1-based). A repeat counts as a duplicate; a first
   * delivery below the highest seen so far counts as out of order; out-of-range numbers count as out
   * of order.
   */
  record(n: number): void {
    this.received++
    if (!Number.isInteger(n) || n < 1 || n > this.expected) {
      this.outOfOrder++
      return
    }
    const seen = this.counts[n]!
    this.counts[n] = seen + 1
    if (seen > 0) {
      this.duplicates++
      return
    }
    this.distinct++
    if (n < this.highest) this.outOfOrder++
    else this.highest = n
  }

  get lost(): number {
    return this.expected - this.distinct
  }

  get complete(): boolean {
    return this.distinct === this.expected
  }

  summary(): { received: number; lost: number; duplicates: number; outOfOrder: number } {
    return { received: this.received, lost: this.lost, duplicates: this.duplicates, outOfOrder: this.outOfOrder }
  }
}
