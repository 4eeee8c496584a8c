/**
 * The route's lifecycle: the central writer and its tick fiber on the route's clock, the drain,
 * and shutdown in a fixed order within `drainTimeout`.
 * @internal
 */
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as SseRoute from "../SseRoute.js"
import { NodeSession } from "./nodeTransport.js"
import { type LateAnswer, ServerGuard } from "./serverGuard.js"
import { Writer } from "./writer.js"

/** @internal */
export interface Lifecycle {
  readonly clock: Clock.Clock
  readonly writer: Writer
  readonly servers: ServerGuard
  readonly draining: () => boolean
  /** Ends every stream and waits for them, at most `drainTimeout`; then destroys the rest. */
  readonly drain: Effect.Effect<void>
}

/**
 * Completes once `latch` does or after `millis` on `clock`, whichever is first. It never needs to
 * be interrupted: shutdown runs in a finalizer, where nothing can be.
 */
const within = (
  runCallback: ReturnType<typeof Runtime.runCallback<never>>,
  clock: Clock.Clock,
  latch: Effect.Effect<void>,
  millis: number
) =>
  Effect.async<void>((resume) => {
    const cancels: Array<() => void> = []
    let done = false
    const finish = () => {
      if (done) return
      done = true
      for (const cancel of cancels) cancel()
      resume(Effect.void)
    }
    cancels.push(runCallback(latch, { onExit: finish }))
    if (!done) cancels.push(runCallback(clock.sleep(Duration.millis(Math.max(0, millis))), { onExit: finish }))
    if (done) for (const cancel of cancels) cancel()
  })

/** The writer reads a session's next replay page on the route's runtime. */
const makeWriter = (config: SseRoute.ResolvedOptions, clock: Clock.Clock, runCallback: ReturnType<typeof Runtime.runCallback<never>>) =>
  new Writer(
    config.heartbeat,
    config.writeDeadline,
    config.stallTimeout,
    () => clock.unsafeCurrentTimeMillis(),
    (session, onPage) => {
      const replay = session.sub.replaying
      if (replay === undefined) return onPage(undefined)
      const held = replay.takeHeld() // the first page of a resume: no fiber for it
      if (held !== undefined) return onPage(held)
      runCallback(replay.next, { onExit: (exit) => onPage(Exit.isSuccess(exit) ? exit.value : "failed") })
    }
  )

/**
 * Builds the route's lifecycle for the scope. Closing the scope shuts down: stop accepting and
 * answer late requests (`answerLate`); end every stream and wait for them; close keep-alive
 * connections as they turn idle and wait for the rest; at the deadline destroy whatever is left.
 * @internal
 */
export const make = (
  config: SseRoute.ResolvedOptions,
  answerLate: LateAnswer
): Effect.Effect<Lifecycle, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const runCallback = Runtime.runCallback(yield* Effect.runtime<never>())
    const writer = makeWriter(config, clock, runCallback)
    const servers = new ServerGuard()
    let draining = false

    // One fiber per route, on the route's clock: heartbeats, lifetimes, stalls, write deadlines.
    const tickEvery = Math.min(
      250,
      Math.max(10, Math.floor(Math.min(config.heartbeat, config.writeDeadline, config.maxLifetime ?? Infinity) / 4))
    )
    yield* Effect.sync(() => writer.tick(clock.unsafeCurrentTimeMillis())).pipe(
      Effect.repeat(Schedule.spaced(Duration.millis(tickEvery))),
      Effect.interruptible,
      Effect.forkScoped
    )

    const drain = Effect.gen(function*() {
      draining = true
      for (const session of writer.sessions) {
        if (session instanceof NodeSession) session.closeSocketOnFinish = true
        session.end("shutdown")
      }
      yield* within(runCallback, clock, writer.whenEmpty, config.drainTimeout)
      for (const session of Array.from(writer.sessions)) session.destroy()
    })

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const deadline = clock.unsafeCurrentTimeMillis() + config.drainTimeout
        servers.stopAccepting(answerLate)
        yield* drain
        servers.closeIdle()
        yield* within(runCallback, clock, servers.whenClosed, deadline - clock.unsafeCurrentTimeMillis())
        servers.destroyAll()
        writer.close()
      })
    )
    return { clock, writer, servers, draining: () => draining, drain }
  })
