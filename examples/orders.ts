/**
 * The `Order` program of issue 11 in the typed API: declare the topic family once, fork a
 * consumer, publish. No JSON, no topic strings at the call sites, no dispatch on a string `type`,
 * no sleep before publishing. Run it with `node --import tsx examples/orders.ts`.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as EventBus from "../src/EventBus.js"
import * as Topic from "../src/Topic.js"

// -- user code starts here
const Order = Schema.Struct({ id: Schema.String, total: Schema.Number })
const Orders = Topic.make("orders/*", { OrderPlaced: Order })

export const program = Effect.gen(function*() {
  const orders = yield* Topic.stream(Orders)
  const consumer = yield* Effect.fork(orders.pipe(
    Stream.take(1),
    Stream.runForEach((m) => m._tag === "Message" ? Effect.log(`order ${m.data.id}: ${m.data.total}`) : Effect.logWarning(m))
  ))
  yield* Topic.publish(Orders, { topic: "orders/1", type: "OrderPlaced", data: { id: "1", total: 42 } })
  yield* consumer.await
}).pipe(Effect.scoped, Effect.provide(EventBus.layerMemory()))
// -- user code ends here

if (process.argv[1]?.endsWith("orders.ts")) NodeRuntime.runMain(program)
