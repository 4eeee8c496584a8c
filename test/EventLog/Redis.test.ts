import { afterAll, beforeAll } from "@effect/vitest"
import * as RedisLog from "../../src/EventLog/Redis.js"
import { suite } from "../EventLogSuite.js"
import { deletePrefixes, REDIS_URL, requireRedis, testPrefix } from "../utils/redis.js"

beforeAll(requireRedis)

const prefixes = [testPrefix("suite"), testPrefix("suite-retention")]
afterAll(() => deletePrefixes(prefixes))

suite("redis", RedisLog.layer({ url: REDIS_URL, prefix: prefixes[0]! }), {
  retention: { layer: RedisLog.layer({ url: REDIS_URL, prefix: prefixes[1]!, maxEvents: 200 }), maxEvents: 200 }
})
