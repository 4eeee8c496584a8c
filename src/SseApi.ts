/**
 * The SSE route as an `HttpApiGroup`: the stream and publish endpoints described for `HttpApi` and
 * its OpenAPI document (`text/event-stream`, the `Last-Event-ID` header, the `topic` and
 * `lastEventId` query parameters, every error status with its JSON body), implemented with the
 * `HttpApiBuilder` raw handlers over the {@link SseRoute.SseRoute} service, so the wire contract is
 * the route's own (`docs/http.md`).
 *
 * Put the group in your `HttpApi` next to your other groups; add `HttpApiMiddleware` security to
 * it (`.middleware(Authorization)`) to guard the stream with a bearer token, an API key or a cookie.
 * The route's `authorize` hook still runs inside (it decides which topics a request may receive).
 *
 * @example
 * ```ts
 * import { HttpApi, HttpApiBuilder } from "@effect/platform"
 * import { Layer } from "effect"
 * import { EventBus, SseApi, SseRoute } from "sluice"
 *
 * const Api = HttpApi.make("app").add(SseApi.group)
 * const ApiLive = HttpApiBuilder.api(Api).pipe(
 *   Layer.provide(SseApi.layer(Api, "sluice")),
 *   Layer.provide(SseRoute.layer()),
 *   Layer.provide(EventBus.layerMemory())
 * )
 * ```
 *
 * @since 0.1.0
 */
import type * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { PublishCheck } from "./internal/publishRoute.js"
import { checkPublishBody, impl } from "./internal/topic.js"
import * as SseRoute from "./SseRoute.js"
import type * as Topic from "./Topic.js"

/**
 * The JSON body of every refusal: `error` is a stable code (`invalid_topic`, `unauthorized`, …).
 *
 * @since 0.1.0
 * @category schemas
 */
export const ErrorBody = Schema.Struct({ error: Schema.String, message: Schema.String }).annotations({
  identifier: "SluiceError",
  description: "A refusal: `error` is a stable code, `message` says why"
})

const refusal = (description: string) => ErrorBody.annotations({ description })

/** Query parameters of the stream; every value decodes, the route itself answers bad ones with 400. */
const StreamParams = Schema.Struct({
  topic: Schema.optional(Schema.Union(Schema.String, Schema.Array(Schema.String))).annotations({
    description:
      "Topic patterns, repeatable: `[A-Za-z0-9._~/-]{1,200}`, an optional trailing `*` matches a prefix; none means every topic"
  }),
  lastEventId: Schema.optional(Schema.String).annotations({
    description: "Resume after this id (`<epoch>-<seq>`), for clients that cannot send the header"
  })
})

const StreamHeaders = Schema.Struct({
  "last-event-id": Schema.optional(Schema.String).annotations({
    description: "Resume after this id (`<epoch>-<seq>`); a bad or stale id answers 200 with `event: reset`"
  })
})

const eventStream = (description: string) =>
  Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/event-stream" })).annotations({
    description
  })

const STREAM_DESCRIPTION = "Server-Sent Events: `retry:` and a comment at once, then `id:` / `event:` / `data:` frames, " +
  "heartbeat comments, `event: reset` for a cursor that cannot be resumed, `event: end` with the reason before a clean end"

const PublishBody = Schema.Struct({
  topic: Schema.String,
  type: Schema.optional(Schema.String),
  data: Schema.Unknown.annotations({ description: "A string, or any JSON value (stored as its JSON text)" })
})

/**
 * The publish body of a typed family, for the OpenAPI document: one member per event type, whose
 * `data` is the payload in its encoded (JSON) form. The handler checks it (`checkPublishBody`).
 */
const typedPublishBody = (topic: Topic.Any) =>
  Schema.Union(
    ...Object.entries(topic.events).map(([type, payload]) =>
      Schema.Struct({
        topic: (topic.pattern.endsWith("*") ? Schema.String : Schema.optional(Schema.Literal(topic.pattern))).annotations({
          description: `A topic of \`${topic.pattern}\``
        }),
        type: Schema.Literal(type),
        data: payload
      }).annotations({ title: type })
    )
  ).annotations({ description: `An event of \`${topic.pattern}\`: \`data\` must decode with its type's schema` })

/**
 * Options of {@link makeGroup}.
 *
 * @since 0.1.0
 * @category models
 */
export interface GroupOptions<Name extends string> {
  /** The group's identifier in the `HttpApi` (default `sluice`). */
  readonly name?: Name | undefined
  /** Where the endpoints live (default `/events`, as the route's `path`). */
  readonly path?: `/${string}` | undefined
  /**
   * A typed topic family behind the stream: a request without `topic` receives the family's
   * pattern, and the OpenAPI description lists its event types.
   */
  readonly topic?: Topic.Any | undefined
}

const describeTopic = (topic: Topic.Any | undefined): string =>
  topic === undefined ? "" : ` Event types of \`${topic.pattern}\`: ${Object.keys(topic.events).map((t) => `\`${t}\``).join(", ")}` +
    " (`data` is the JSON of the payload encoded with its schema)."

/**
 * Builds the group: `GET <path>` (endpoint `events`, the stream) and `POST <path>` (endpoint
 * `publish`). Mount its handlers with {@link layer}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeGroup = <const Name extends string = "sluice">(options?: GroupOptions<Name>) => {
  const path = options?.path ?? "/events"
  const topic = options?.topic
  const events = HttpApiEndpoint.get("events", path)
    .setUrlParams(StreamParams)
    .setHeaders(StreamHeaders)
    .addSuccess(eventStream(STREAM_DESCRIPTION + "." + describeTopic(topic)))
    .addError(refusal("`invalid_topic`: a malformed topic pattern"), { status: 400 })
    .addError(refusal("`unauthorized`: the route's `authorize` hook refused the request"), { status: 401 })
    .addError(refusal("`forbidden`: the route's `authorize` hook forbids the topics"), { status: 403 })
    .annotate(OpenApi.Summary, "Subscribe: a resumable Server-Sent-Events stream")
  const publish = HttpApiEndpoint.post("publish", path)
    .setPayload(topic === undefined ? PublishBody : typedPublishBody(topic))
    .addSuccess(Schema.Struct({ id: Schema.String }).annotations({ description: "The event's id" }), { status: 201 })
    .addError(
      refusal(
        "`invalid_json`, `invalid_event` or `bad_request`" +
          (topic === undefined ? "" : "; `invalid_payload`: `data` does not decode with its type's schema (nothing is appended)")
      ),
      { status: 400 }
    )
    .addError(refusal("`unauthorized`"), { status: 401 })
    .addError(refusal("`forbidden`"), { status: 403 })
    .addError(refusal("`method_not_allowed`: publishing is not enabled on the route"), { status: 405 })
    .addError(refusal("`payload_too_large`"), { status: 413 })
    .addError(refusal("`unsupported_media_type`: not `application/json`"), { status: 415 })
    .addError(refusal("`unavailable`: the log refused the append; retry"), { status: 503 })
    .annotate(OpenApi.Summary, "Publish one event")
  return HttpApiGroup.make((options?.name ?? "sluice") as Name).add(events).add(publish).annotate(
    OpenApi.Description,
    "sluice: publish and subscribe over Server-Sent Events"
  )
}

/**
 * The default group: identifier `sluice`, endpoints at `/events`.
 *
 * @since 0.1.0
 * @category groups
 */
export const group = makeGroup()

/**
 * Implements the group named `name` of `api` with the {@link SseRoute.SseRoute} handlers (raw
 * handlers: the route writes the response itself). `topic`, when given, is the family whose pattern
 * a stream request without `topic` receives (pass the one given to {@link makeGroup}), and it types
 * the publish endpoint: a body whose `data` does not decode with its type's schema, whose type is
 * not the family's or whose topic is outside the pattern is refused with `400` and a JSON
 * `{ error, message }` (`invalid_payload` or `invalid_event`), and nothing is appended.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <
  ApiId extends string,
  Groups extends HttpApiGroup.HttpApiGroup.Any,
  ApiE,
  ApiR,
  const Name extends HttpApiGroup.HttpApiGroup.Name<Groups>
>(
  api: HttpApi.HttpApi<ApiId, Groups, ApiE, ApiR>,
  name: Name,
  options?: { readonly topic?: Topic.Any | undefined }
): Layer.Layer<
  HttpApiGroup.ApiGroup<ApiId, Name>,
  never,
  SseRoute.SseRoute | HttpApiGroup.HttpApiGroup.MiddlewareWithName<Groups, Name>
> =>
  HttpApiBuilder.group(api, name, ((handlers: RawHandlers) =>
    Effect.map(SseRoute.SseRoute, (route) =>
      handlers
        .handleRaw("events", () => withDefaultTopic(route.events, options?.topic))
        .handleRaw("publish", () => withPublishCheck(route.publish, options?.topic)))) as never) as never

/** The two raw handlers, whatever the group's exact type (its endpoints are those of `makeGroup`). */
interface RawHandlers {
  readonly handleRaw: (name: "events" | "publish", handler: () => Effect.Effect<unknown, never, any>) => RawHandlers
}

/** A publish through a typed group is checked against the family's schemas. */
const withPublishCheck = <A, E, R>(publish: Effect.Effect<A, E, R>, topic: Topic.Any | undefined): Effect.Effect<A, E, R> => {
  if (topic === undefined) return publish
  const family = impl(topic)
  return Effect.provideService(publish, PublishCheck, (body) => checkPublishBody(family, body))
}

/** A stream request without `topic` gets the family's pattern. */
const withDefaultTopic = <A, E, R>(
  events: Effect.Effect<A, E, R | HttpServerRequest.HttpServerRequest>,
  topic: Topic.Any | undefined
): Effect.Effect<A, E, R | HttpServerRequest.HttpServerRequest> =>
  topic === undefined ? events : Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const url = new URL(request.url, "http://localhost")
    if (url.searchParams.has("topic")) return events
    url.searchParams.append("topic", topic.pattern)
    return Effect.provideService(
      events,
      HttpServerRequest.HttpServerRequest,
      request.modify({ url: url.pathname + url.search })
    )
  })
