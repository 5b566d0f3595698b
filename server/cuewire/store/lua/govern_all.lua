-- govern_all(s, v, asks): governance (the `governance(KEYS, ARGV)` function: govern.lua) for
-- each firing request of one session, highest priority first. Prepended by store/redis.py
-- to the scripts that call it (resolve.lua, ingest.lua).
-- asks: list of {"a": govern.lua's ARGV, "f": the firing ("" or a deadline's token: granted
--   again, not counted again), "m": the session field that keeps the firing granted last
--   (fields.FIRING), "s": shows (bool), "w": wants the whole session and visitor hashes
--   when its show is granted (bool), "x": "" live, "shadow" (`mode: shadow`: governed as
--   if live, its grant shows nothing and counts in its own fields, govern.lua) or "out" (the
--   visitor is outside the rule's rollout: answered not_in_rollout, nothing asked or written)}
-- A show after a granted show of the same call is held `lower_priority` without asking; a
-- shadow show also after a granted shadow show (as if live), and a live show never after one.
-- Returns the verdicts ({code, replaced prompt, replaced rule} each) and whether a granted
-- show asked for the whole hashes.
local function govern_all(s, v, asks)
  local verdicts, shown, whole, seen = {}, false, false, false
  for i, r in ipairs(asks) do
    local verdict
    local shadow = r.x == 'shadow'
    if r.x == 'out' then
      verdict = {'not_in_rollout', '', ''}
    elseif r.s and (shown or (shadow and seen)) then
      verdict = {'lower_priority', '', ''}
    elseif r.f ~= '' and redis.call('HGET', s, r.m) == r.f then
      verdict = {'', '', ''}  -- this firing was granted before (a retry): granted again
    else
      verdict = governance({s, v}, r.a)
      if r.f ~= '' and verdict[1] == '' then redis.call('HSET', s, r.m, r.f) end
    end
    if verdict[1] == '' and r.s then
      seen = true
      if not shadow then
        shown = true
        whole = whole or r.w
      end
    end
    verdicts[i] = verdict
  end
  return verdicts, whole
end
