/** A small seeded generator (mulberry32): the same seed replays the same plan. */
export const seeded = (seed: number) => {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return { seed, next, int: (n: number) => Math.floor(next() * n) }
}

/**
 * The seed of a randomized test: `SLUICE_TEST_SEED` when set (to replay a failure), else a fresh
 * one. Tests print it and put it in every assertion message.
 */
export const testSeed = (): number => {
  const fromEnv = Number(process.env.SLUICE_TEST_SEED)
  return Number.isSafeInteger(fromEnv) && fromEnv > 0 ? fromEnv : 1 + Math.floor(Math.random() * 2 ** 31)
}
