-- Apply one batch of events to a session in one round trip.
-- KEYS: session hash, recent-events list, seen-seq zset, visitor hash, live stream,
--       pending-seq zset (stored, rule actions not yet applied: see commit.lua)
-- ARGV: now_ms, session_ttl_s, visitor_ttl_s, keep_recent, socket_id, visitor_id,
--       live stream max length (0: no live stream), session id,
--       then one JSON array with, per event, [seq, event JSON, incr, set, setnx, visitor_incr,
--       visitor_set, clear_if] as facts.py encodes its changes (lists of fields, maps of
--       field -> value; clear_if: session fields set to "" only while they hold the value)
-- Changes of new events are merged (counters summed, last set wins, first setnx wins) and
-- written once per field; resent events (a seq already seen from this tab) change nothing.
-- An unverified identify (user_verified "0") never downgrades a verified visitor: it keeps
-- the verified user_id and user_verified (its traits are still set).
-- A new seq is also marked pending until commit.lua applies the engine's actions for it; a
-- resend of a pending seq changes no facts but is handed to the engine again.
-- ARGV[10]: which fields to return, JSON {"s": [session fields], "sp": [session field
--   prefixes], "v": [visitor fields], "vp": [visitor field prefixes]} (RuleSet.fields: what
--   the engine reads), or "" for the whole hashes
-- Returns {flags (1 new, 2 resent while pending, 0 resent and done), session facts (flat),
--          visitor facts (flat)}
local skey, ekey, qkey, vkey, pkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6]
local now, sttl, vttl, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local live_max, session_id = tonumber(ARGV[7]), ARGV[8]
local batch = cjson.decode(ARGV[9])
local fresh, accepted = {}, {}
local incr, set, setnx, vincr, vset, clear_if = {}, {}, {}, {}, {}, {}

local function add(counters, fields)
  for _, f in ipairs(fields) do counters[f] = (counters[f] or 0) + 1 end
end
local function put(target, fields, first_wins)
  for f, v in pairs(fields) do
    if not (first_wins and target[f]) then target[f] = v end
  end
end

local verified = redis.call('HGET', vkey, 'user_verified') == '1'

for e, ev in ipairs(batch) do
  local seq = ev[1]
  local is_new = redis.call('ZADD', qkey, 'NX', seq, seq)
  fresh[e] = is_new
  if is_new == 0 and redis.call('ZSCORE', pkey, seq) then
    fresh[e] = 2
  end
  if is_new == 1 then
    redis.call('ZADD', pkey, seq, seq)
    add(incr, ev[3]); put(set, ev[4], false); put(setnx, ev[5], true)
    local vs = ev[7]
    if type(vs) == 'table' and vs.user_verified == '0' and (verified or vset.user_verified == '1') then
      vs.user_id = nil; vs.user_verified = nil
    end
    add(vincr, ev[6]); put(vset, vs, false)
    if type(ev[8]) == 'table' then
      for f, v in pairs(ev[8]) do
        clear_if[f] = clear_if[f] or {}
        clear_if[f][v] = true
      end
    end
    accepted[#accepted + 1] = ev[2]
  end
end

redis.call('HSETNX', skey, 'visitor', ARGV[6])
redis.call('HSETNX', skey, 'started', now)
for f, n in pairs(incr) do redis.call('HINCRBY', skey, f, n) end
for f, v in pairs(setnx) do redis.call('HSETNX', skey, f, v) end
local flat = {}
for f, v in pairs(set) do flat[#flat + 1] = f; flat[#flat + 1] = v end
if ARGV[5] ~= '' then flat[#flat + 1] = 'sid'; flat[#flat + 1] = ARGV[5] end
if #flat > 0 then redis.call('HSET', skey, unpack(flat)) end
for f, values in pairs(clear_if) do
  local current = redis.call('HGET', skey, f)
  if current and values[current] then redis.call('HSET', skey, f, '') end
end
for f, n in pairs(vincr) do redis.call('HINCRBY', vkey, f, n) end
flat = {'last_seen', now}
for f, v in pairs(vset) do flat[#flat + 1] = f; flat[#flat + 1] = v end
redis.call('HSET', vkey, unpack(flat))

if #accepted > 0 then
  redis.call('LPUSH', ekey, unpack(accepted))
  redis.call('LTRIM', ekey, 0, keep - 1)
  if live_max > 0 then
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', live_max, '*', 'at', now, 'session', session_id,
               'visitor', ARGV[6], 'events', '[' .. table.concat(accepted, ',') .. ']')
  end
end
redis.call('ZREMRANGEBYRANK', qkey, 0, -1025)
redis.call('ZREMRANGEBYRANK', pkey, 0, -1025)
for _, k in ipairs({skey, ekey, qkey, pkey}) do redis.call('EXPIRE', k, sttl + 300) end  -- + grace
redis.call('EXPIRE', vkey, vttl)
local function read(key, fields, prefixes)
  local out = {}
  for i = 1, #fields, 1000 do  -- in slices: unpack has a limit
    local slice = {unpack(fields, i, math.min(i + 999, #fields))}
    local values = redis.call('HMGET', key, unpack(slice))
    for j, f in ipairs(slice) do
      if values[j] then out[#out + 1] = f; out[#out + 1] = values[j] end
    end
  end
  for _, prefix in ipairs(prefixes) do
    local pattern = string.gsub(prefix, '[%*%?%[%]\\]', '\\%0') .. '*'
    local cursor = '0'
    repeat
      local page = redis.call('HSCAN', key, cursor, 'MATCH', pattern, 'COUNT', 1000)
      cursor = page[1]
      for j = 1, #page[2], 2 do out[#out + 1] = page[2][j]; out[#out + 1] = page[2][j + 1] end
    until cursor == '0'
  end
  return out
end
if ARGV[10] == nil or ARGV[10] == '' then
  return {fresh, redis.call('HGETALL', skey), redis.call('HGETALL', vkey)}
end
local want = cjson.decode(ARGV[10])
return {fresh, read(skey, want.s, want.sp), read(vkey, want.v, want.vp)}
