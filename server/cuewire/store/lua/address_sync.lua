-- One process's share of a client address's rate limit, on a Redis Cluster (store/addresses.py):
-- the events the process admitted since its last sync are added to the shared GCRA state,
-- and the state after them is returned for the process's next decisions. The key and its
-- meaning (the theoretical arrival time, ms) are those of address_rate.lua and ingest.lua.
-- KEYS[1] the address rate key; ARGV: now_ms, events admitted since the last sync (negative:
-- given back), the process's own view of the arrival time (its last read plus its own
-- events, each taken from max(view, now) as the GCRA does), interval_ms
-- Returns the shared arrival time after this sync, as a string (ms, 3 decimals).
--
-- The shared time is the later of the time before plus this process's events (every event
-- of every process is charged: additive) and the process's own view (which holds the clamp
-- to "now" of an idle address, so one process alone keeps exactly its local GCRA).
local now, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local view, interval = tonumber(ARGV[3]), tonumber(ARGV[4])
local shared = tonumber(redis.call('GET', KEYS[1]))
local tat = view
if shared then tat = math.max(shared + n * interval, view) end
if tat > now and (shared == nil or tat ~= shared) then
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
end
return string.format('%.3f', tat)
