-- Resume a live session or start a new one, and count the visitor's sessions.
-- KEYS[1] the session the client holds (or a key that does not exist)
-- KEYS[2] the new session's key, used when KEYS[1] is gone
-- KEYS[3] the visitor hash
-- KEYS[4] the visitor's sessions (zset, keys.visitor_sessions)
-- ARGV: now_ms, session_ttl_s, visitor_ttl_s, visitor_id, new_session_id, the fields to
--       return as ingest.lua's ARGV[10] (or "" for none), the session id the client holds
--       (or ""), then (field, value) pairs to set on the session (device, time zone: per tab,
--       the latest wins)
-- Returns {resumed (0/1), returning (0/1), previous visit ms or "", session facts (flat),
--          visitor facts (flat)}: the facts the fields name, as the session starts (read.lua)
local now, sttl, vttl, visitor = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
-- keys outlive the session by a grace period, so a deadline that falls due at the very end of
-- a session still finds its facts; the session itself ends after session_ttl without events
-- (its `last` field says when). Plus REFRESH_S, as ingest.lua sets them: the time to live of
-- a key is never shortened here
local GRACE_S, REFRESH_S = 300, 60
local function describe(key, id)
  for i = 8, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
  local full = sttl + GRACE_S + REFRESH_S
  redis.call('EXPIRE', key, full)
  redis.call('EXPIRE', KEYS[3], vttl + REFRESH_S)
  -- the visitor's sessions: this one as long as its keys, the expired ones out
  redis.call('ZADD', KEYS[4], now, id)
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. (tonumber(now) - full * 1000))
  redis.call('EXPIRE', KEYS[4], full)
end
local function facts(key)
  if ARGV[6] == '' then return {{}, {}} end
  local want = cjson.decode(ARGV[6])
  return {read(key, want.s, want.sp), read(KEYS[3], want.v, want.vp)}
end
local held = redis.call('HMGET', KEYS[1], 'visitor', 'last')
if held[1] == visitor and tonumber(now) - (tonumber(held[2]) or 0) <= sttl * 1000 then
  describe(KEYS[1], ARGV[7])
  local s = redis.call('HMGET', KEYS[1], 'returning', 'prev_seen')
  local known = facts(KEYS[1])
  return {1, tonumber(s[1]) or 0, s[2] or '', known[1], known[2]}
end
local sessions = redis.call('HINCRBY', KEYS[3], 'sessions', 1)
redis.call('HSETNX', KEYS[3], 'first_seen', now)
local prev = redis.call('HGET', KEYS[3], 'last_seen') or ''
redis.call('HSET', KEYS[3], 'last_seen', now, 'session', ARGV[5])
local returning = 0
if sessions > 1 then returning = 1 end
redis.call('HSET', KEYS[2], 'visitor', visitor, 'started', now, 'last', now,
           'returning', returning, 'prev_seen', prev, 'session_no', sessions)
describe(KEYS[2], ARGV[5])
local known = facts(KEYS[2])
return {0, returning, prev, known[1], known[2]}
