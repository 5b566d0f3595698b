-- Admit a batch's events before they are ingested: rate limits and caps on distinct names.
-- KEYS: visitor rate key, address rate key, session names hash, visitor names hash
-- ARGV: now_ms, events in the batch, visitor interval ms (0: no limit), visitor burst,
--       address interval ms (0: no limit), address burst, session ttl s, visitor ttl s,
--       caps JSON {kind: cap}, then JSON per event [[scope ("s"/"v"), kind, name], ...]
-- Rate: GCRA (a token bucket kept as one theoretical arrival time per key), so the budget
-- survives reconnects. The first `granted` events get a token from both buckets.
-- Caps: each names hash holds the names seen (field = name) and a count per kind ("#kind");
-- an event whose new names would pass a kind's cap is refused and adds nothing (cap 0: none).
-- Returns {granted, retry_ms, per granted event: "" admitted or the kind whose cap it hit}
local now, n = tonumber(ARGV[1]), tonumber(ARGV[2])

local function available(key, interval, burst)
  if interval <= 0 then return n, 0 end
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local tau = interval * burst
  local avail = math.floor((now + tau - tat) / interval)
  if avail < 0 then avail = 0 end
  return avail, tat
end

local function take(key, interval, tat, k)
  if interval <= 0 then return 0 end
  local new_tat = tat + k * interval
  if k > 0 then
    redis.call('SET', key, string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
  end
  return new_tat
end

-- when the next token comes back to a bucket
local function wait(interval, burst, tat)
  if interval <= 0 then return 0 end
  return math.max(0, math.ceil(tat + interval - interval * burst - now))
end

local vi, vb = tonumber(ARGV[3]), tonumber(ARGV[4])
local ai, ab = tonumber(ARGV[5]), tonumber(ARGV[6])
local v_avail, v_tat = available(KEYS[1], vi, vb)
local a_avail, a_tat = available(KEYS[2], ai, ab)
local granted = math.min(n, v_avail, a_avail)
v_tat = take(KEYS[1], vi, v_tat, granted)
a_tat = take(KEYS[2], ai, a_tat, granted)
local retry = 0
if granted < n then
  retry = math.max(wait(vi, vb, v_tat), wait(ai, ab, a_tat))
end

local caps = cjson.decode(ARGV[9])
local events = cjson.decode(ARGV[10])
local owners = {s = KEYS[3], v = KEYS[4]}
local touched = {}
local verdicts = {}
for e = 1, granted do
  local hit = ''
  local adds, pending_of = {}, {}
  for _, c in ipairs(events[e] or {}) do
    local key, kind, name = owners[c[1]], c[2], c[3]
    if redis.call('HEXISTS', key, name) == 0 then
      local counter = '#' .. kind
      local pending = pending_of[key .. '\0' .. counter] or 0
      local count = (tonumber(redis.call('HGET', key, counter)) or 0) + pending
      local cap = tonumber(caps[kind]) or 0
      if cap > 0 and count >= cap then
        hit = kind
        break
      end
      pending_of[key .. '\0' .. counter] = pending + 1
      adds[#adds + 1] = {key, counter, name}
    end
  end
  if hit == '' then
    for _, a in ipairs(adds) do
      if redis.call('HSETNX', a[1], a[3], '1') == 1 then
        redis.call('HINCRBY', a[1], a[2], 1)
      end
      touched[a[1]] = true
    end
  end
  verdicts[e] = hit
end
if touched[KEYS[3]] then redis.call('EXPIRE', KEYS[3], tonumber(ARGV[7]) + 300) end
if touched[KEYS[4]] then redis.call('EXPIRE', KEYS[4], tonumber(ARGV[8])) end
return {granted, retry, verdicts}
