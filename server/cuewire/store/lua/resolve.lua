-- Resolve a batch's candidates in one round trip: apply the batch's actions (commit.lua) and
-- ask governance about each firing (govern_all.lua), atomically: the actions and the grants
-- happen together, or neither does and the client's resend decides the batch again.
-- Composed by store/redis.py with `commit(KEYS, ARGV)` (commit.lua as a function) and
-- govern_all.lua.
-- KEYS: the tab's pending-seq zset (unused without a commit), session hash, visitor hash, then
--       the keys the commit's ops write (see commit.lua)
-- ARGV[1]: the commit, JSON as commit.lua's ARGV[1], or "" for none (a deadline's firing)
-- ARGV[2]: JSON list of requests, as govern_all.lua's `asks`
-- Returns 0 when the commit's seqs were no longer pending (nothing applied), else
-- {1, verdicts, session hash, visitor hash} (the hashes flat, empty unless a granted show
-- asked for them).
if ARGV[1] ~= '' and commit(KEYS, {ARGV[1]}) == 0 then return 0 end
local s, v = KEYS[2], KEYS[3]
local verdicts, whole = govern_all(s, v, cjson.decode(ARGV[2]))
if whole then return {1, verdicts, redis.call('HGETALL', s), redis.call('HGETALL', v)} end
return {1, verdicts, {}, {}}
