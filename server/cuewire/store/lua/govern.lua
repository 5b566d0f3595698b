-- Governance, atomically: may this rule fire now in this session? If so, count it.
-- Hash fields (fired:, fired_at:, shown:, optout:, snooze:, dc:, wc:) as in cuewire/fields.py.
-- KEYS: session hash, visitor hash
-- ARGV: rule, now_ms, shows (0/1), prompt_id, per_session, per_day, per_week, cooldown_ms,
--       max_prompts_per_session, one_at_a_time (0/1), snooze_ms, dismiss_count,
--       dismiss_pause_ms, priority, shadow (0/1)
-- A shadow request (a rule in `mode: shadow`) is governed as if live and counted in fields of
-- its own (fired:~<rule>, fired_at:~<rule>, shown:~<rule>, dc:~<rule>:, wc:~<rule>:): no
-- field a live rule reads changes (no prompts count, no prompt on screen, no dismissal reset).
-- Returns {code, replaced prompt id, replaced rule}: code "" when the firing is granted, else
-- a code (codes.py, Hold) saying why not. A granted show that takes the place of a
-- lower-priority prompt on screen names that prompt, which the caller closes and audits.
local s, v = KEYS[1], KEYS[2]
local rule, now = ARGV[1], tonumber(ARGV[2])
local shows = ARGV[3] == '1'
local per_session, per_day, per_week = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local cooldown, max_prompts = tonumber(ARGV[8]), tonumber(ARGV[9])
local one_at_a_time, snooze = ARGV[10] == '1', tonumber(ARGV[11])
local dismiss_count, dismiss_pause = tonumber(ARGV[12]), tonumber(ARGV[13])
local priority = tonumber(ARGV[14]) or 0
local shadow = ARGV[15] == '1'
local own = shadow and ('~' .. rule) or rule  -- the name the rule's own counters go under
local day = 'dc:' .. own .. ':' .. math.floor(now / 86400000)
local week = 'wc:' .. own .. ':' .. math.floor(now / 604800000)

local function num(key, field) return tonumber(redis.call('HGET', key, field)) or 0 end
local function held(code) return {code, '', ''} end

if shows and redis.call('HEXISTS', v, 'optout:' .. rule) == 1 then return held('opted_out') end
if shows and now < num(v, 'snooze:' .. rule) + snooze then return held('snoozed') end
if shows and dismiss_count > 0 and num(v, 'dismissed') >= dismiss_count then
  if now < num(v, 'last_dismiss') + dismiss_pause then return held('dismiss_pause') end
  if not shadow then redis.call('HSET', v, 'dismissed', 0) end
end
if cooldown > 0 and now < num(v, 'fired_at:' .. own) + cooldown then return held('cooldown') end
if per_session > 0 and num(s, 'fired:' .. own) >= per_session then
  return held('cap_session')
end
if per_day > 0 and num(v, day) >= per_day then return held('cap_day') end
if per_week > 0 and num(v, week) >= per_week then return held('cap_week') end
if shows and max_prompts > 0 and num(s, 'prompts') >= max_prompts then
  return held('cap_site')
end
local replaced, replaced_rule = '', ''
local showing = redis.call('HGET', s, 'showing')
if shows and one_at_a_time and showing and showing ~= '' then
  -- Only a strictly higher priority takes the place of the prompt on screen (a prompt shown
  -- before priorities were stored has none and is never replaced).
  local on_screen = tonumber(redis.call('HGET', s, 'showing_priority'))
  if on_screen == nil or priority <= on_screen then return held('showing') end
  replaced, replaced_rule = showing, redis.call('HGET', s, 'showing_rule') or ''
end

redis.call('HINCRBY', s, 'fired:' .. own, 1)
redis.call('HSET', v, 'fired_at:' .. own, now)
redis.call('HINCRBY', v, 'shown:' .. own, 1)
if per_day > 0 then redis.call('HINCRBY', v, day, 1) end
if per_week > 0 then redis.call('HINCRBY', v, week, 1) end
if shadow then return {'', '', ''} end
if shows then
  redis.call('HINCRBY', s, 'prompts', 1)
  redis.call('HSET', s, 'showing', ARGV[4], 'showing_rule', rule, 'showing_priority', priority)
end
return {'', replaced, replaced_rule}
