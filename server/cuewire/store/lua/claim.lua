-- Governance, atomically: may this rule fire now in this session? If so, count it.
-- KEYS: session hash, visitor hash
-- ARGV: rule, now_ms, shows (0/1), prompt_id, per_session, per_day, per_week, cooldown_ms,
--       max_prompts_per_session, one_at_a_time (0/1), snooze_ms, dismiss_count, dismiss_pause_ms
-- Returns "" when the firing is granted, else the reason it is suppressed.
local s, v = KEYS[1], KEYS[2]
local rule, now = ARGV[1], tonumber(ARGV[2])
local shows = ARGV[3] == '1'
local per_session, per_day, per_week = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local cooldown, max_prompts = tonumber(ARGV[8]), tonumber(ARGV[9])
local one_at_a_time, snooze = ARGV[10] == '1', tonumber(ARGV[11])
local dismiss_count, dismiss_pause = tonumber(ARGV[12]), tonumber(ARGV[13])
local day = 'dc:' .. rule .. ':' .. math.floor(now / 86400000)
local week = 'wc:' .. rule .. ':' .. math.floor(now / 604800000)

local function num(key, field) return tonumber(redis.call('HGET', key, field)) or 0 end

if shows and redis.call('HEXISTS', v, 'optout:' .. rule) == 1 then return 'opted out' end
if shows and now < num(v, 'snooze:' .. rule) + snooze then return 'snoozed' end
if shows and dismiss_count > 0 and num(v, 'dismissed') >= dismiss_count then
  if now < num(v, 'last_dismiss') + dismiss_pause then
    return 'paused after ' .. dismiss_count .. ' dismissals'
  end
  redis.call('HSET', v, 'dismissed', 0)
end
if cooldown > 0 and now < num(v, 'fired_at:' .. rule) + cooldown then return 'cooldown' end
if per_session > 0 and num(s, 'fired:' .. rule) >= per_session then
  return 'capped: ' .. per_session .. ' per session'
end
if per_day > 0 and num(v, day) >= per_day then return 'capped: ' .. per_day .. ' per day' end
if per_week > 0 and num(v, week) >= per_week then return 'capped: ' .. per_week .. ' per week' end
if shows and max_prompts > 0 and num(s, 'prompts') >= max_prompts then
  return 'capped: ' .. max_prompts .. ' prompts per session (site policy)'
end
local showing = redis.call('HGET', s, 'showing')
if shows and one_at_a_time and showing and showing ~= '' then
  return 'another prompt is showing'
end

redis.call('HINCRBY', s, 'fired:' .. rule, 1)
redis.call('HSET', v, 'fired_at:' .. rule, now)
redis.call('HINCRBY', v, 'shown:' .. rule, 1)
if per_day > 0 then redis.call('HINCRBY', v, day, 1) end
if per_week > 0 then redis.call('HINCRBY', v, week, 1) end
if shows then
  redis.call('HINCRBY', s, 'prompts', 1)
  redis.call('HSET', s, 'showing', ARGV[4])
end
return ''
