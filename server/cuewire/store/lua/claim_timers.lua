-- Claim due timers atomically: whoever removes a member owns its firing.
-- KEYS[1] the timers zset; ARGV: now_ms, max count
-- Returns {next_due_ms or "", member, due_ms, member, due_ms, ...}: the earliest deadline left,
-- then the claimed timers.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0,
                       tonumber(ARGV[2]))
local claimed = {''}
for i = 1, #due, 2 do
  if redis.call('ZREM', KEYS[1], due[i]) == 1 then
    claimed[#claimed + 1] = due[i]
    claimed[#claimed + 1] = due[i + 1]
  end
end
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if next_due[2] then claimed[1] = next_due[2] end
return claimed
