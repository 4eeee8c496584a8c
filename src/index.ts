/**
 * sluice: an Effect 3 event bus with bounded subscriber buffers and resumable Server-Sent Events.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Event from "./Event.js"

/** @since 0.1.0 */
export * as EventBus from "./EventBus.js"

/** @since 0.1.0 */
export * as EventLog from "./EventLog.js"

/** @since 0.1.0 */
export * as Sse from "./Sse.js"

/** @since 0.1.0 */
export * as SseApi from "./SseApi.js"

/** @since 0.1.0 */
export * as SseClient from "./SseClient.js"

/** @since 0.1.0 */
export * as SseRoute from "./SseRoute.js"

/** @since 0.1.0 */
export * as Topic from "./Topic.js"
