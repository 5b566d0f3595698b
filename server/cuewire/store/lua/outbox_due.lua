-- Move the outbox's retries that fell due back onto its stream (outbox.py), oldest first.
-- KEYS: the stream, the due set. ARGV[1]: now (ms), ARGV[2]: at most this many.
-- A member is JSON {"j": the job's JSON, "a": its attempts so far}: each becomes one entry.
-- Returns how many were moved.
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  local retry = cjson.decode(member)
  redis.call('XADD', KEYS[1], '*', 'j', retry.j, 'a', retry.a)
  redis.call('ZREM', KEYS[2], member)
end
return #due
