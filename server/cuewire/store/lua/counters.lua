-- Measurement counters (counters.py, docs/qa.md "Measurement"): one hash per site and UTC
-- day, fields `rule|variant|kind`, `#f|funnel|segment|step` and `#s|model|segment`, added to
-- as things happen.
-- `ckey` is that hash, or nil on a cluster when it is in another slot than the call's keys:
-- the fields are then collected in `out` and the store adds them beside the call.
local COUNTERS_TTL_S = 400 * 86400

local function bump(ckey, field, out)
  if ckey then
    redis.call('HINCRBY', ckey, field, 1)
    out.n = (out.n or 0) + 1
  else
    out[#out + 1] = field
  end
end

local function counted(ckey, out)
  if ckey and (out.n or 0) > 0 then redis.call('EXPIRE', ckey, COUNTERS_TTL_S) end
end

-- A visitor's exposure to a rule, open for the goal window after their last exposure: the
-- marker holds "at|variant" (server times, ms); `now` is the time it is asked at. Nil when
-- there is none or it closed; else the variant.
local function open_exposure(key, now, window)
  local held = redis.call('GET', key)
  if not held then return nil end
  local at, variant = string.match(held, '^(%d+)|(.*)$')
  if not at or tonumber(now) - tonumber(at) > window then return nil end
  return variant
end

-- What an exposure leaves for the visitor: `x` = {marker, window ms, variant, field counting
-- a new exposed visitor, at}: a visitor without an open exposure is counted once, and the
-- exposure stays open the goal window after this one; `p` = {prompt mark, rule, variant,
-- ttl s}: what the prompt's feedback events are counted against.
local function mark_exposure(keys, x, p, ckey, out)
  if x then
    if not open_exposure(keys[x[1]], x[5], x[2]) then bump(ckey, x[4], out) end
    redis.call('SET', keys[x[1]], x[5] .. '|' .. x[3], 'PX', x[2])
  end
  if p then
    redis.call('HSET', keys[p[1]], 'r', p[2], 'v', p[3])
    redis.call('EXPIRE', keys[p[1]], p[4])
  end
end

-- A learned segment the server assigned the visitor (counters.py `segment_field`): counted
-- once per visitor, segment and UTC day; the visitor hash `vkey` keeps the day it was last
-- counted under the same field. 1 when counted now, else 0.
local function count_segment(vkey, field, day, ckey, out)
  if redis.call('HGET', vkey, field) == day then return 0 end
  redis.call('HSET', vkey, field, day)
  bump(ckey, field, out)
  return 1
end

-- What a batch's new events count (ingest.lua): `spec.e` lists, in event order,
--   {event, "p", prompt mark, kind}: feedback on a prompt, counted once per prompt and kind;
--   {event, "g", exposure marker, rule, window ms}: a goal event: converts the visitor's open
--     exposure (once: the marker goes);
--   {event, "f", progress, funnel, {steps it matches}, window ms, ttl s, exposure marker or 0,
--     its rule's window ms}: a funnel step, counted when it is the visitor's next one (the
--     first step starts again when the window passed); the segment ("x:" and the variant of
--     an open exposure to the funnel's split rule, or "none") is fixed at entry.
-- `fresh[e]` is 1 for an event stored for the first time: only those count.
local function tally_events(keys, spec, fresh, now, ckey, out)
  for _, t in ipairs(spec.e) do
    if fresh[t[1]] == 1 then
      local key = keys[t[3]]
      if t[2] == 'p' then
        local rv = redis.call('HMGET', key, 'r', 'v')
        if rv[1] and redis.call('HSETNX', key, t[4], '1') == 1 then
          bump(ckey, rv[1] .. '|' .. rv[2] .. '|' .. t[4], out)
        end
      elseif t[2] == 'g' then
        local variant = open_exposure(key, now, t[5])
        if variant then
          redis.call('DEL', key)
          bump(ckey, t[4] .. '|' .. variant .. '|converted', out)
        end
      else
        local held = redis.call('HMGET', key, 's', 't', 'g')
        local step, segment = tonumber(held[1]) or 0, held[3]
        if t[6] > 0 and held[2] and tonumber(now) - tonumber(held[2]) > t[6] then step = 0 end
        local next_step = false
        for _, s in ipairs(t[5]) do
          if s == step + 1 then next_step = true end
        end
        if next_step then
          if step == 0 then
            segment = 'none'
            if t[8] > 0 then
              local variant = open_exposure(keys[t[8]], now, t[9])
              if variant then segment = 'x:' .. variant end
            end
            redis.call('HSET', key, 's', 1, 't', now, 'g', segment)
          else
            redis.call('HSET', key, 's', step + 1)
          end
          redis.call('EXPIRE', key, t[7])
          bump(ckey, '#f|' .. t[4] .. '|' .. segment .. '|' .. (step + 1), out)
        end
      end
    end
  end
end
