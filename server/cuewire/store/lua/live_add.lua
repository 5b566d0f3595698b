-- On a cluster: the live stream entries of the batches one process took in one loop turn,
-- for one site (store/live.py), in the order they were taken; on one Redis ingest.lua writes
-- each batch's entry itself (the live stream has a slot of its own on a cluster).
-- KEYS[1] the site's live stream; ARGV[1] its maximum length (approximate, as ingest.lua's),
-- then 5 per entry: at (ms), session id, visitor id, the events' JSON array, device class
-- ("" when the session has none). Returns the number of entries added.
local max, n = ARGV[1], 0
for i = 2, #ARGV, 5 do
  local entry = {'at', ARGV[i], 'session', ARGV[i + 1], 'visitor', ARGV[i + 2],
                 'events', ARGV[i + 3]}
  if ARGV[i + 4] ~= '' then entry[#entry + 1] = 'device'; entry[#entry + 1] = ARGV[i + 4] end
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', max, '*', unpack(entry))
  n = n + 1
end
return n
