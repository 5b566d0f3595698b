-- A claimed timer fires only if it is still the session's pending one for its rule.
-- KEYS: session hash, visitor hash; ARGV: timer field ("t:<rule>"), token
-- Returns {session hash (flat), visitor hash (flat)}, or false when stale.
-- Reads only: the token is cleared when the firing is acked (ack_timer.lua), so a firing
-- claimed again after a crash finds it still there.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return false end
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}
