-- Apply one batch of events to a session in one round trip.
-- KEYS: session hash, recent-events list, seen-seq zset, visitor hash, live stream
-- ARGV: now_ms, session_ttl_s, visitor_ttl_s, keep_recent, socket_id, visitor_id, n_events,
--       live stream max length (0: no live stream), session id,
--       then per event: seq, event JSON, and its fact changes as encoded by facts.py:
--       n_incr, fields..., n_set, (field, value)..., n_setnx, (field, value)...,
--       n_visitor_incr, fields..., n_visitor_set, (field, value)...
-- Returns {fresh flags (1 new, 0 resent), session hash (flat), visitor hash (flat)}
local skey, ekey, qkey, vkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, sttl, vttl, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n = tonumber(ARGV[7])
local live_max, session_id = tonumber(ARGV[8]), ARGV[9]
local i = 10
local fresh = {}
local accepted = {}
redis.call('HSETNX', skey, 'visitor', ARGV[6])
redis.call('HSETNX', skey, 'started', now)
for e = 1, n do
  local seq, json = ARGV[i], ARGV[i + 1]
  i = i + 2
  local is_new = redis.call('ZADD', qkey, 'NX', seq, seq)
  fresh[e] = is_new
  local count = tonumber(ARGV[i]); i = i + 1
  for _ = 1, count do
    if is_new == 1 then redis.call('HINCRBY', skey, ARGV[i], 1) end
    i = i + 1
  end
  for pass = 1, 2 do
    count = tonumber(ARGV[i]); i = i + 1
    for _ = 1, count do
      if is_new == 1 then
        if pass == 1 then redis.call('HSET', skey, ARGV[i], ARGV[i + 1])
        else redis.call('HSETNX', skey, ARGV[i], ARGV[i + 1]) end
      end
      i = i + 2
    end
  end
  count = tonumber(ARGV[i]); i = i + 1
  for _ = 1, count do
    if is_new == 1 then redis.call('HINCRBY', vkey, ARGV[i], 1) end
    i = i + 1
  end
  count = tonumber(ARGV[i]); i = i + 1
  for _ = 1, count do
    if is_new == 1 then redis.call('HSET', vkey, ARGV[i], ARGV[i + 1]) end
    i = i + 2
  end
  if is_new == 1 then
    redis.call('LPUSH', ekey, json)
    accepted[#accepted + 1] = json
  end
end
if live_max > 0 and #accepted > 0 then
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', live_max, '*', 'at', now, 'session', session_id,
             'visitor', ARGV[6], 'events', '[' .. table.concat(accepted, ',') .. ']')
end
if ARGV[5] ~= '' then redis.call('HSET', skey, 'sid', ARGV[5]) end
redis.call('HSET', vkey, 'last_seen', now)
redis.call('LTRIM', ekey, 0, keep - 1)
redis.call('ZREMRANGEBYRANK', qkey, 0, -1025)
for _, k in ipairs({skey, ekey, qkey}) do redis.call('EXPIRE', k, sttl + 300) end  -- + grace
redis.call('EXPIRE', vkey, vttl)
return {fresh, redis.call('HGETALL', skey), redis.call('HGETALL', vkey)}
