/**
 * Readers of single environment variables, each checked as it is read: a value that is present but
 * wrong fails with a `ConfigError` naming the variable; an absent one is `None`.
 * @internal
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

/** A positive safe integer. @internal */
export const positive = (n: number): boolean => Number.isSafeInteger(n) && n >= 1

/** @internal */
export const integerVar = (name: string): Config.Config<Option.Option<number>> =>
  Config.option(Config.integer(name).pipe(
    Config.validate({ message: `${name} must be a positive integer`, validation: positive })
  ))

/** A duration such as `15 seconds` or `500 millis`, at least `minMillis`. @internal */
export const durationVar = (name: string, minMillis = 1): Config.Config<Option.Option<Duration.Duration>> =>
  Config.option(Config.duration(name).pipe(
    Config.validate({
      message: `${name} must be a duration of at least ${minMillis} ms (e.g. "15 seconds")`,
      validation: (d) => Duration.toMillis(d) >= minMillis
    })
  ))

/** An absolute path (`/events`); with `off`, the word `off` turns the route off (`false`). @internal */
export const pathVar = (name: string, off = false): Config.Config<Option.Option<string | false>> =>
  Config.option(Config.string(name).pipe(
    Config.validate({
      message: `${name} must be a path starting with "/"${off ? ` or "off"` : ""}`,
      validation: (p) => p.startsWith("/") || (off && p === "off")
    }),
    Config.map((p): string | false => (p === "off" ? false : p))
  ))

/** `base` with every variable that was set laid over it. @internal */
export const overlay = <A extends object>(base: A | undefined, env: Record<string, Option.Option<unknown>>): A => {
  const out: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(env)) {
    if (Option.isSome(value)) out[key] = value.value
  }
  return out as A
}
