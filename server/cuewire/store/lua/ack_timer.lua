-- A claimed timer is done (fired, dropped, stale or moved on): release it. Idempotent.
-- KEYS: leases zset, claimed hash, session hash
-- ARGV: member ("" to leave the lease alone), timer field ("t:<rule>"; "" to leave the
--       session alone), token, hold field to clear ("" for none)
-- The timer field is cleared only while it still holds this timer's token. On a cluster the
-- lease and the session are in different slots: store/redis.py calls this twice, once for
-- each part (the other part's keys then repeat a key of the part's slot, unused).
if ARGV[1] ~= '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
if ARGV[2] ~= '' then
  if redis.call('HGET', KEYS[3], ARGV[2]) == ARGV[3] then redis.call('HDEL', KEYS[3], ARGV[2]) end
  if ARGV[4] ~= '' then redis.call('HDEL', KEYS[3], ARGV[4]) end
end
return 1
