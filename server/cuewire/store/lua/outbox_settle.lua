-- Settle one outbox entry a consumer read (outbox.py): acknowledge and delete it, then, by
-- verdict, count it done, schedule its retry or dead-letter it. Nothing happens when the
-- entry was no longer pending (another consumer reclaimed and settled it): one settle each.
-- KEYS: the stream, the due set (retries by due time, ms), the dead list, the counts hash
-- ARGV[1]: the group, ARGV[2]: the entry id, ARGV[3]: "done" | "retry" | "dead"
-- ARGV[4]: retry: the due time (ms); dead: the cap of the dead list
-- ARGV[5]: retry / dead: the JSON to keep (the job, its attempts, the last code)
-- Returns 1 when settled, 0 when it was not pending.
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('XDEL', KEYS[1], ARGV[2])
local verdict = ARGV[3]
if verdict == 'retry' then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[4]), ARGV[5])
elseif verdict == 'dead' then
  redis.call('LPUSH', KEYS[3], ARGV[5])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
end
redis.call('HINCRBY', KEYS[4], verdict, 1)
return 1
