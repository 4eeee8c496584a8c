/**
 * node-redis connections as scoped resources, commands as Effects whose every failure is a typed
 * `EventLogError`, and scripts run with `EVALSHA` falling back to `EVAL` on `NOSCRIPT`.
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { createClient } from "redis"
import { EventLogError } from "./errors.js"
import type { Script } from "./redisScripts.js"

/**
 * The part of a node-redis client the log uses: raw commands (replies in RESP2 shapes) and closing.
 * @internal
 */
export interface Client {
  readonly isOpen: boolean
  /** Connected, and ready for commands. */
  readonly isReady: boolean
  sendCommand(args: ReadonlyArray<string>): Promise<unknown>
  close(): Promise<unknown>
  destroy(): unknown
}

/** @internal */
export interface ConnectOptions {
  readonly url: string
  readonly name: string
  readonly connectTimeoutMillis: number
  /** Reconnect by itself after the first connection (the command connection), or never (the tail's). */
  readonly reconnect: boolean
}

/** Capped exponential backoff with jitter: a random delay in [½, 1] × min(cap, base × 2^attempt). */
export const backoffMillis = (attempt: number, random: number, baseMillis = 100, capMillis = 5_000): number =>
  Math.round(Math.min(capMillis, baseMillis * 2 ** Math.min(attempt, 30)) * (0.5 + random / 2))

/** @internal */
export const unavailable = (message: string, cause?: unknown): EventLogError =>
  new EventLogError({ reason: "Unavailable", message: `${message}: ${describe(cause)}`, cause })

const describe = (cause: unknown): string => {
  if (cause instanceof Error) return cause.message.length > 0 ? cause.message : cause.name
  return String(cause)
}

/**
 * A client for the scope. Offline queueing is off, so a command issued while the connection is
 * down fails at once instead of running late. A client that reconnects (the command connection)
 * waits for its first attempt only: when Redis is unreachable it is returned anyway, its commands
 * fail with `Unavailable`, and it keeps connecting in the background with capped, jittered backoff.
 * One that does not (the tail's) must connect at once, or fails with `Unavailable`.
 * @internal
 */
export const connect = (options: ConnectOptions): Effect.Effect<Client, EventLogError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const client = createClient({
          url: options.url,
          name: options.name,
          RESP: 2,
          disableOfflineQueue: true,
          // Commands whose reply is overdue stay queued until Redis answers or the socket closes: bound them.
          commandsQueueMaxLength: 100_000,
          socket: {
            connectTimeout: options.connectTimeoutMillis,
            keepAlive: true,
            reconnectStrategy: (retries: number, cause: Error) =>
              options.reconnect ? backoffMillis(retries, Math.random()) : cause
          }
        })
        // node-redis emits every socket error as an event: without a listener Node would throw it.
        client.on("error", () => {})
        const connected = client.connect()
        if (!options.reconnect) {
          try {
            await connected
          } catch (cause) {
            client.destroy()
            throw cause
          }
        } else {
          connected.catch(() => {}) // rejects only when the client is closed while connecting
          await Promise.race([connected, new Promise((resolve) => client.once("error", resolve))])
        }
        return client as Client
      },
      catch: (cause) => unavailable(`cannot connect to Redis at ${redactUrl(options.url)}`, cause)
    }),
    (client) =>
      // The tail's connection may be blocked in XREAD: a graceful close would wait for it to time out.
      Effect.tryPromise(() => options.reconnect ? client.close() : Promise.resolve()).pipe(
        Effect.timeout(Duration.seconds(1)),
        Effect.ignore,
        Effect.andThen(Effect.sync(() => {
          if (client.isOpen) client.destroy()
        }))
      )
  )

/** The URL without its password, for messages. */
export const redactUrl = (url: string): string => url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@")

/**
 * Sends one command; a reply error, a closed socket or a timeout is an `Unavailable` error.
 * The timeout is a plain timer (node-redis's own allocates an `AbortSignal.timeout` per command,
 * which cost more than the rest of an append); a reply that comes later is dropped.
 * @internal
 */
export const send = (client: Client, args: ReadonlyArray<string>, timeoutMillis: number): Effect.Effect<unknown, EventLogError> =>
  Effect.async<unknown, EventLogError>((resume) => {
    let pending = true
    const timer = setTimeout(() => {
      pending = false
      resume(Effect.fail(unavailable(`Redis ${args[0]} failed`, new Error(`no reply within ${timeoutMillis} ms`))))
    }, timeoutMillis)
    client.sendCommand(args).then(
      (reply) => {
        if (!pending) return
        pending = false
        clearTimeout(timer)
        resume(Effect.succeed(reply))
      },
      (cause) => {
        if (!pending) return
        pending = false
        clearTimeout(timer)
        resume(Effect.fail(unavailable(`Redis ${args[0]} failed`, cause)))
      }
    )
    return Effect.sync(() => {
      pending = false
      clearTimeout(timer)
    })
  })

const isNoScript = (error: EventLogError): boolean =>
  error.cause instanceof Error && error.cause.message.startsWith("NOSCRIPT")

/**
 * Runs a script by its SHA1; when Redis no longer has it (restarted, `SCRIPT FLUSH`), sends the body
 * with `EVAL`, which caches it again.
 * @internal
 */
export const runScript = (
  client: Client,
  script: Script,
  keys: ReadonlyArray<string>,
  args: ReadonlyArray<string>,
  timeoutMillis: number
): Effect.Effect<unknown, EventLogError> => {
  const rest = [String(keys.length), ...keys, ...args]
  return send(client, ["EVALSHA", script.sha, ...rest], timeoutMillis).pipe(
    Effect.catchIf(isNoScript, () => send(client, ["EVAL", script.body, ...rest], timeoutMillis))
  )
}
