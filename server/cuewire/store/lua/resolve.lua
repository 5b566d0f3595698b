-- Resolve a batch's candidates in one round trip: apply the batch's actions (commit.lua) and
-- ask governance (govern.lua) about each firing, highest priority first, atomically: the
-- actions and the grants happen together, or neither does and the client's resend decides
-- the batch again. Composed by store/redis.py: `commit(KEYS, ARGV)` and
-- `governance(KEYS, ARGV)` are commit.lua and govern.lua as functions.
-- KEYS: the tab's pending-seq zset (unused without a commit), session hash, visitor hash, then
--       the keys the commit's ops write (see commit.lua)
-- ARGV[1]: the commit, JSON as commit.lua's ARGV[1], or "" for none (a deadline's firing)
-- ARGV[2]: JSON list of requests, each {"a": govern.lua's ARGV, "f": the firing ("" or a
--   deadline's token: granted again, not counted again), "m": the session field that keeps
--   the firing granted last (fields.FIRING), "s": shows (bool), "w": wants the whole session
--   and visitor hashes when its show is granted (bool)}
-- A show after a granted show of this call is held `lower_priority` without asking.
-- Returns 0 when the commit's seqs were no longer pending (nothing applied), else
-- {1, verdicts ({code, replaced prompt, replaced rule} each), session hash, visitor hash}
-- (the hashes flat, empty unless a granted show asked for them).
if ARGV[1] ~= '' and commit(KEYS, {ARGV[1]}) == 0 then return 0 end
local s, v = KEYS[2], KEYS[3]
local verdicts, shown, whole = {}, false, false
for i, r in ipairs(cjson.decode(ARGV[2])) do
  local verdict
  local marker = r.m
  if r.s and shown then
    verdict = {'lower_priority', '', ''}
  elseif r.f ~= '' and redis.call('HGET', s, marker) == r.f then
    verdict = {'', '', ''}  -- this firing was granted before (a retry): granted again
  else
    verdict = governance({s, v}, r.a)
    if r.f ~= '' and verdict[1] == '' then redis.call('HSET', s, marker, r.f) end
  end
  if verdict[1] == '' and r.s then
    shown = true
    whole = whole or r.w
  end
  verdicts[i] = verdict
end
if whole then return {1, verdicts, redis.call('HGETALL', s), redis.call('HGETALL', v)} end
return {1, verdicts, {}, {}}
