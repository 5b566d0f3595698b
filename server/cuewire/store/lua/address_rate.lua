-- The per-address rate limit alone: on a cluster the address key has a slot of its own, so
-- store/redis.py asks it before the batch's ingest.lua (which gets the answer as the gate's
-- "ag"/"ar"). The same GCRA as ingest.lua's.
-- KEYS[1] the address rate key; ARGV: now_ms, events in the batch, interval_ms, burst
-- Returns {granted, retry_ms}: how many of the events have a token, and when the next comes.
local now, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local interval, burst = tonumber(ARGV[3]), tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local avail = math.floor((now + interval * burst - tat) / interval)
if avail < 0 then avail = 0 end
local granted = math.min(n, avail)
local new_tat = tat + granted * interval
if granted > 0 then
  redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
end
local retry = 0
if granted < n then retry = math.max(0, math.ceil(new_tat + interval - interval * burst - now)) end
return {granted, retry}
