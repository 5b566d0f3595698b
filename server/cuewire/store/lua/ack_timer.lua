-- A claimed timer is done (fired, dropped, stale or moved on): release it. Idempotent.
-- KEYS: leases zset, claimed hash, session hash
-- ARGV: member, timer field ("t:<rule>"), token, hold field to clear ("" for none)
-- The timer field is cleared only while it still holds this timer's token.
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[3], ARGV[2]) == ARGV[3] then redis.call('HDEL', KEYS[3], ARGV[2]) end
if ARGV[4] ~= '' then redis.call('HDEL', KEYS[3], ARGV[4]) end
return 1
