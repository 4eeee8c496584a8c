/**
 * The driver's toolkit: child processes for the server and the load generators (pinned to
 * different cores when possible), interleaved A/B rounds, and result rows.
 */
import { type Env, stealMeter } from "./env.js"
import { type Child, spawnChild } from "./ipc.js"
import { max, median, min, sig } from "./stats.js"

export interface Ctx {
  readonly smoke: boolean
  readonly rounds: number
  /** Whether `--rounds` was given (then every scenario uses it as is). */
  readonly roundsGiven: boolean
  readonly pin: boolean
  /** Profile the server during measured phases (.bench-out/prof/<scenario>-<mode>-<round>.cpuprofile). */
  readonly prof: boolean
  /** Write heap snapshots where a scenario supports it (S7). */
  readonly heap: boolean
  readonly env: Env
  readonly log: (message: string) => void
  /** Records a failed assertion (the run exits non-zero) and returns it for the row. */
  readonly fail: (message: string) => string
  /** Server rigs shared between scenarios (stopped at the end of the run). */
  readonly pool: RigPool
}

export interface Row {
  readonly scenario: string
  readonly params: Record<string, unknown>
  readonly metric: string
  /** Which direction is good for `sluice / baseline`. */
  readonly better: "higher" | "lower"
  readonly sluice: number
  readonly baseline: number
  readonly baselineName: string
  /** Median of the per-round ratios sluice / baseline. */
  readonly ratio: number
  readonly spread: readonly [number, number]
  readonly reps: ReadonlyArray<{ readonly sluice: number; readonly baseline: number; readonly ratio: number }>
  readonly goal?: string | undefined
  readonly met?: boolean | undefined
  readonly extra?: Record<string, unknown> | undefined
  readonly env: Env
}

/** The default servers (default route options) that several scenarios share. */
export const SHARED = { sluice: { mode: "sluice" }, raw: { mode: "raw" } } as const

export const SERVER_CPU = "0"
export const CLIENT_CPU = "1"

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export const startServer = (ctx: Ctx, config: Record<string, unknown>): Promise<Child> => {
  return spawnChild(`server(${String(config.mode)})`, "server.ts", config, { cpu: ctx.pin ? SERVER_CPU : undefined })
}

/** Runs a measured phase, under the server's CPU profiler when `--prof` is on. */
export const profiled = async <A>(ctx: Ctx, server: Child, name: string, fn: () => Promise<A>): Promise<A> => {
  if (!ctx.prof) return fn()
  await server.call("profStart")
  try {
    return await fn()
  } finally {
    const file = await server.call<string>("profStop", { name })
    ctx.log(`profile written: ${file}`)
  }
}

export const startClients = (ctx: Ctx, port: number, count: number): Promise<Array<Child>> =>
  Promise.all(
    Array.from({ length: count }, (_, i) =>
      spawnChild(`loadgen#${i}`, "loadgen.ts", { origin: `http://127.0.0.1:${port}` }, {
        cpu: ctx.pin ? CLIENT_CPU : undefined,
        gc: false
      }))
  )

export interface Rig {
  readonly server: Child
  readonly clients: Array<Child>
}

/**
 * Starts one server (with its own load generators) per entry of `configs`, all at once, runs `fn`
 * and always stops them. Servers live for the whole scenario: loading Effect and the platform takes
 * seconds of CPU, and the rounds reuse the warm processes.
 */
export const withRigs = async <N extends string, A>(
  ctx: Ctx,
  configs: Record<N, Record<string, unknown>>,
  clientCount: number,
  fn: (rigs: Record<N, Rig>) => Promise<A>
): Promise<A> => {
  const names = Object.keys(configs) as Array<N>
  const started: Array<Child> = []
  const track = async <C extends Child | Array<Child>>(p: Promise<C>): Promise<C> => {
    const c = await p
    started.push(...(Array.isArray(c) ? c : [c]))
    return c
  }
  try {
    const rigs = await Promise.all(names.map(async (name) => {
      const server = await track(startServer(ctx, configs[name]))
      const clients = await track(startClients(ctx, server.info.port as number, clientCount))
      return [name, { server, clients }] as const
    }))
    return await fn(Object.fromEntries(rigs) as Record<N, Rig>)
  } finally {
    await Promise.all(started.map((c) => c.stop()))
  }
}

/**
 * Rigs kept for the whole run and shared by the scenarios that tolerate a used server (throughput,
 * latency, resume, churn). Memory-slope scenarios start their own.
 */
export class RigPool {
  private readonly rigs = new Map<string, Promise<Rig>>()
  private readonly started: Array<Child> = []

  get<N extends string>(ctx: Ctx, configs: Record<N, Record<string, unknown>>, clientCount: number): Promise<Record<N, Rig>> {
    const names = Object.keys(configs) as Array<N>
    return Promise.all(names.map(async (name) => {
      const key = JSON.stringify(configs[name])
      let rig = this.rigs.get(key)
      if (rig === undefined) {
        rig = (async () => {
          const server = await startServer(ctx, configs[name])
          this.started.push(server)
          const clients = await startClients(ctx, server.info.port as number, clientCount)
          this.started.push(...clients)
          return { server, clients }
        })()
        this.rigs.set(key, rig)
      }
      const r = await rig
      if (r.clients.length < clientCount) {
        const more = await startClients(ctx, r.server.info.port as number, clientCount - r.clients.length)
        this.started.push(...more)
        r.clients.push(...more)
      }
      // Nothing left open by an earlier scenario.
      await Promise.all(r.clients.map((c) => c.call("close")))
      await waitConnections(r.server, 0)
      return [name, r] as const
    })).then((entries) => Object.fromEntries(entries) as Record<N, Rig>)
  }

  async stop(): Promise<void> {
    await Promise.all(this.started.map((c) => c.stop()))
  }
}

export interface OpenOptions {
  readonly path?: string
  readonly sampleEvery?: number
}

/** Splits `k` streams over the clients and opens them; throws when some could not open. */
export const openStreams = async (clients: ReadonlyArray<Child>, k: number, options: OpenOptions = {}) => {
  const share = (i: number) => Math.floor(k / clients.length) + (i < k % clients.length ? 1 : 0)
  const results = await Promise.all(
    clients.map((c, i) =>
      c.call<{ opened: number; failed: number; firstError?: string; ms: number }>("open", {
        n: share(i),
        path: options.path ?? "/events?topic=bench",
        sampleEvery: options.sampleEvery ?? 0
      }, 300_000)
    )
  )
  const failed = results.reduce((a, r) => a + r.failed, 0)
  if (failed > 0) throw new Error(`${failed} of ${k} streams failed to open: ${results.find((r) => r.firstError)?.firstError}`)
  return { ms: Math.max(...results.map((r) => r.ms)) }
}

export const waitConnections = async (server: Child, n: number, timeoutMs = 30_000) => {
  const r = await server.call<{ ok: boolean }>("waitConnections", { n, timeoutMs }, timeoutMs + 5_000)
  if (!r.ok) throw new Error(`server did not reach ${n} streams: ${JSON.stringify(r)}`)
}

/** Opens `k` streams over the rig's clients and waits until its server holds all of them. */
export const openStreamsOn = async (rig: Rig, k: number, options?: OpenOptions): Promise<void> => {
  await openStreams(rig.clients, k, options)
  await waitConnections(rig.server, k)
}

export interface ExpectResult {
  readonly ok: boolean
  readonly tFirst: number | undefined
  readonly tLast: number | undefined
  readonly total: number
  readonly min: number
  readonly max: number
  readonly conns: number
  readonly cpuMs: number
  readonly wallMs: number
}

export const resetAll = (clients: ReadonlyArray<Child>) => Promise.all(clients.map((c) => c.call("reset")))

export const expectAll = (clients: ReadonlyArray<Child>, perConn: number, timeoutMs: number) =>
  Promise.all(clients.map((c) => c.call<ExpectResult>("expect", { perConn, timeoutMs }, timeoutMs + 10_000)))

export const countsAll = (clients: ReadonlyArray<Child>) =>
  Promise.all(clients.map((c) => c.call<{ total: number; min: number; max: number; conns: number }>("counts")))

export const latencyAll = async (clients: ReadonlyArray<Child>): Promise<Array<number>> =>
  (await Promise.all(clients.map((c) => c.call<Array<number>>("latency")))).flat()

/**
 * Runs `publish` while every stream of `clients` waits for `perConn` events (the wait is asked for
 * first); returns the streams' results and the publisher's.
 */
export const receiveWhile = <A>(
  clients: ReadonlyArray<Child>,
  perConn: number,
  timeoutMs: number,
  publish: () => Promise<A>
): Promise<[Array<ExpectResult>, A]> => Promise.all([expectAll(clients, perConn, timeoutMs), publish()])

/** A warm-up outside the measurement: resets the counts, then delivers `perConn` events to every stream. */
export const warmUp = async (
  clients: ReadonlyArray<Child>,
  perConn: number,
  timeoutMs: number,
  publish: () => Promise<unknown>
): Promise<void> => {
  await resetAll(clients)
  await receiveWhile(clients, perConn, timeoutMs, publish)
}

/**
 * Checks that every stream received exactly `perConn` events since the reset (after a short settle,
 * so late extras are caught too). Returns an error message or undefined.
 */
export const checkDelivery = async (
  clients: ReadonlyArray<Child>,
  k: number,
  perConn: number,
  settleMs = 150
): Promise<string | undefined> => {
  await sleep(settleMs)
  const counts = await countsAll(clients)
  const total = counts.reduce((a, c) => a + c.total, 0)
  const lo = Math.min(...counts.map((c) => c.min))
  const hi = Math.max(...counts.map((c) => c.max))
  const conns = counts.reduce((a, c) => a + c.conns, 0)
  if (conns !== k || total !== perConn * k || lo !== perConn || hi !== perConn) {
    return `delivery: expected ${perConn} x ${k} = ${perConn * k}, received ${total} (per stream ${lo}..${hi}, ${conns} streams)`
  }
  return undefined
}

/**
 * One measured delivery on the rig's `k` open streams: resets the counts, runs `publish` (under the
 * server's profiler with `--prof`) while every stream waits for `perConn` events, then checks that
 * each received exactly that many. Returns the streams' results, the publisher's and the failed
 * check, if any.
 */
export const measureDelivery = async <A>(
  ctx: Ctx,
  name: string,
  rig: Rig,
  expected: { readonly k: number; readonly perConn: number; readonly timeoutMs: number },
  publish: () => Promise<A>
): Promise<{ results: Array<ExpectResult>; published: A; error: string | undefined }> => {
  const { k, perConn, timeoutMs } = expected
  await resetAll(rig.clients)
  const [results, published] = await profiled(ctx, rig.server, name, () => receiveWhile(rig.clients, perConn, timeoutMs, publish))
  const error = await checkDelivery(rig.clients, k, perConn)
  return { results, published, error }
}

/**
 * Runs every variant once per round, A/B/A/B with the order reversed on alternate rounds.
 * Returns the per-round values of each variant (in round order).
 */
export const interleave = async <V extends string, A>(
  ctx: Ctx,
  label: string,
  variants: ReadonlyArray<V>,
  run: (variant: V, round: number) => Promise<A>,
  describe: (a: A) => string,
  rounds = ctx.rounds
): Promise<Record<V, Array<A>>> => {
  const out = Object.fromEntries(variants.map((v) => [v, [] as Array<A>])) as Record<V, Array<A>>
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? variants : [...variants].reverse()
    for (const v of order) {
      const steal = stealMeter()
      const a = await run(v, round)
      out[v].push(a)
      ctx.log(`${label} round ${round + 1}/${rounds} ${v}: ${describe(a)} [host steal ${steal() ?? "?"} %]`)
    }
  }
  return out
}

/** Rounds for the noisiest ratios (S3 throughput, S6 latency): five unless `--rounds` was given or smoke. */
export const noisyRounds = (ctx: Ctx): number => (ctx.smoke || ctx.roundsGiven ? ctx.rounds : Math.max(5, ctx.rounds))

/** Records every failed delivery assertion of the reps (the run exits non-zero); returns the messages. */
export const failures = <V extends string>(
  ctx: Ctx,
  label: string,
  reps: Record<V, ReadonlyArray<{ readonly error?: string | undefined }>>
): Array<string> =>
  (Object.values(reps) as Array<ReadonlyArray<{ readonly error?: string | undefined }>>)
    .flat()
    .flatMap((r) => (r.error === undefined ? [] : [ctx.fail(`${label}: ${r.error}`)]))

/** One value per rep for every variant of `reps` (in the variants' order). */
export const perVariant = <V extends string, R, B>(reps: Record<V, ReadonlyArray<R>>, f: (r: R) => B): Record<V, Array<B>> => {
  const entries = Object.entries(reps) as Array<[V, ReadonlyArray<R>]>
  return Object.fromEntries(entries.map(([v, rs]) => [v, rs.map(f)])) as Record<V, Array<B>>
}

export interface RowFields {
  readonly scenario: string
  readonly params: Record<string, unknown>
  readonly metric: string
  readonly better: "higher" | "lower"
  readonly baselineName: string
  readonly sluice: ReadonlyArray<number>
  readonly baseline: ReadonlyArray<number>
  readonly goal?: string | undefined
  /** Decides the goal from the row's medians. */
  readonly check?: ((row: { sluice: number; baseline: number; ratio: number }) => boolean) | undefined
  readonly extra?: Record<string, unknown> | undefined
}

/** A row from per-round values (sluice[i] pairs with baseline[i] of the same round). */
export const makeRow = (ctx: Ctx, fields: RowFields): Row => {
  const reps = fields.sluice.map((s, i) => {
    const b = fields.baseline[i]!
    return { sluice: sig(s), baseline: sig(b), ratio: sig(s / b) }
  })
  const ratios = reps.map((r) => r.ratio).filter((r) => Number.isFinite(r))
  const sluice = sig(median(fields.sluice))
  const baseline = sig(median(fields.baseline))
  const ratio = sig(median(ratios))
  return {
    scenario: fields.scenario,
    params: fields.params,
    metric: fields.metric,
    better: fields.better,
    sluice,
    baseline,
    baselineName: fields.baselineName,
    ratio,
    spread: [sig(min(ratios)), sig(max(ratios))],
    reps,
    goal: fields.goal,
    met: fields.check === undefined ? undefined : fields.check({ sluice, baseline, ratio }),
    extra: fields.extra,
    env: ctx.env
  }
}

/**
 * Rows that have fields in common (the scenario, its params, …): `shared` holds those once, each
 * entry the rest; an entry's own fields win over the shared ones.
 */
export const makeRows = <S extends Partial<RowFields>>(
  ctx: Ctx,
  shared: S,
  rows: ReadonlyArray<Omit<RowFields, keyof S> & Partial<RowFields>>
): Array<Row> => rows.map((fields) => makeRow(ctx, { ...shared, ...fields } as RowFields))
