/**
 * The Lua scripts of the Redis log. Every script takes `KEYS[1]` = the meta hash and `KEYS[2]` =
 * the stream, both under one hash tag, and `ARGV[1]` = a fresh epoch to use if the meta is missing.
 *
 * The meta hash holds `e` (the epoch), `m` (the epoch's creation time in ms, from Redis `TIME`) and
 * `s` (the last sequence number). Stream ids are `<m>-<seq>`: a seek by seq is exact, and a new
 * epoch's ids sort after every id of the old one, so a tail reader notices the change.
 * @internal
 */
import { createHash } from "node:crypto"

/** @internal */
export interface Script {
  readonly body: string
  readonly sha: string
}

const script = (body: string): Script => ({ body, sha: createHash("sha1").update(body).digest("hex") })

// Reads the meta, creating a new epoch (and dropping a stream left from the old one) when it is missing.
// Integers are rendered with %.0f: Lua's tostring switches to exponents above 1e14.
const PRELUDE = `
local function int(n) return string.format('%.0f', n) end
local function nowms()
  local t = redis.call('TIME')
  return t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
end
local function meta()
  local v = redis.call('HMGET', KEYS[1], 'e', 'm', 's')
  if v[1] then return v[1], v[2], tonumber(v[3]) end
  local m = nowms()
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', ARGV[1], 'm', m, 's', 0)
  return ARGV[1], m, 0
end
local function earliest(m, s)
  local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
  if not first then return s + 1 end
  local fm, fs = string.match(first[1], '^(%d+)-(%d+)$')
  if fm ~= m then return s + 1 end
  return tonumber(fs)
end
`

/**
 * `{epoch, m, head, earliest}`.
 * @internal
 */
export const META: Script = script(`${PRELUDE}
local e, m, s = meta()
return {e, m, int(s), int(earliest(m, s))}
`)

/**
 * ARGV: epoch, after, upTo (-1: the head), count. Returns `{epoch, m, head, earliest, expired, upTo,
 * entries}`: the entries in `(after, upTo]`, at most `count`, unless `after + 1` is older than earliest.
 * @internal
 */
export const READ: Script = script(`${PRELUDE}
local e, m, s = meta()
local after = tonumber(ARGV[2])
local upTo = tonumber(ARGV[3])
if upTo < 0 or upTo > s then upTo = s end
local first = earliest(m, s)
if after >= upTo then return {e, m, int(s), int(first), 0, int(upTo), {}} end
if after + 1 < first then return {e, m, int(s), int(first), 1, int(upTo), {}} end
local entries = redis.call('XRANGE', KEYS[2], '(' .. m .. '-' .. ARGV[2], m .. '-' .. int(upTo), 'COUNT', ARGV[4])
return {e, m, int(s), int(first), 0, int(upTo), entries}
`)

/**
 * KEYS[3..]: idempotency keys. ARGV: epoch, maxLen, maxAgeMs (0: none), windowMs, n, then per event
 * topic, type, data, and the index in KEYS of its idempotency key (0: none).
 * Returns `{epoch, time, seqs, times, repeats}` where `repeats` lists `{i, 1, topic, type, data}` for
 * each input that repeated a key within the window (its seq and time are the first append's, its
 * fields the stored event's), or `{i, 0}` when that event is no longer retained.
 * @internal
 */
export const APPEND: Script = script(`${PRELUDE}
local e, m, s = meta()
local now = nowms()
local maxLen, maxAge, window, n = ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local seqs, times, repeats = {}, {}, {}
for i = 0, n - 1 do
  local at = 6 + i * 4
  local k = tonumber(ARGV[at + 3])
  local prior = false
  if k > 0 then prior = redis.call('GET', KEYS[k]) end
  local pe, ps, pt
  if prior then pe, ps, pt = string.match(prior, '^([^:]+):(%d+):(%d+)$') end
  if prior and pe == e then
    seqs[i + 1], times[i + 1] = ps, pt
    local stored = redis.call('XRANGE', KEYS[2], m .. '-' .. ps, m .. '-' .. ps)[1]
    if stored then
      local f = stored[2]
      repeats[#repeats + 1] = {i, 1, f[4], f[6], f[8]}
    else
      repeats[#repeats + 1] = {i, 0}
    end
  else
    s = s + 1
    local seq = int(s)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxLen, m .. '-' .. seq,
      't', now, 'p', ARGV[at], 'y', ARGV[at + 1], 'd', ARGV[at + 2])
    if k > 0 then redis.call('SET', KEYS[k], e .. ':' .. seq .. ':' .. now, 'PX', window) end
    seqs[i + 1], times[i + 1] = seq, now
  end
end
redis.call('HSET', KEYS[1], 's', int(s))
if maxAge > 0 then
  local cutoff = tonumber(now) - maxAge
  local last = false
  for _, entry in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', n + 100)) do
    if tonumber(entry[2][2]) >= cutoff then break end
    last = entry[1]
  end
  if last then
    local lm, ls = string.match(last, '^(%d+)-(%d+)$')
    redis.call('XTRIM', KEYS[2], 'MINID', lm .. '-' .. int(tonumber(ls) + 1))
  end
  redis.call('PEXPIRE', KEYS[2], maxAge)
end
return {e, now, seqs, times, repeats}
`)
