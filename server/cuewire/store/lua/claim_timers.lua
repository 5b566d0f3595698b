-- Claim due timers with a lease, atomically (the way arq and BullMQ claim delayed jobs).
-- A claimed timer moves from the timers zset to the leases zset, scored by lease expiry, and
-- its due time is kept in the claimed hash; the firing process removes it when done
-- (ack_timer.lua). A lease that expired (its process died or stalled) is claimed again by
-- whoever comes next, so a crash between claim and firing loses nothing.
-- KEYS: timers zset, leases zset, claimed hash; ARGV: now_ms, max count, lease_ms
-- Returns {next_due_ms or "", member, due_ms, member, due_ms, ...}: the earliest deadline or
-- lease expiry left, then the claimed timers.
local timers, leases, claimed = KEYS[1], KEYS[2], KEYS[3]
local now, limit, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {''}
local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, limit)
for _, member in ipairs(expired) do
  redis.call('ZADD', leases, now + lease, member)
  out[#out + 1] = member
  out[#out + 1] = redis.call('HGET', claimed, member) or ARGV[1]
end
local room = limit - #expired
if room > 0 then
  local due = redis.call('ZRANGEBYSCORE', timers, '-inf', now, 'WITHSCORES', 'LIMIT', 0, room)
  for i = 1, #due, 2 do
    redis.call('ZREM', timers, due[i])
    redis.call('ZADD', leases, now + lease, due[i])
    redis.call('HSET', claimed, due[i], due[i + 1])
    out[#out + 1] = due[i]
    out[#out + 1] = due[i + 1]
  end
end
local next_due = redis.call('ZRANGE', timers, 0, 0, 'WITHSCORES')[2]
local next_lease = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')[2]
if next_lease and (not next_due or tonumber(next_lease) < tonumber(next_due)) then
  next_due = next_lease
end
if next_due then out[1] = next_due end
return out
