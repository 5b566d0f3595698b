-- Count a visitor the server assigned to a learned segment (counters.lua's count_segment),
-- apart from a batch: for a batch decided after its store call (pipeline.py).
-- KEYS[1] the visitor hash; KEYS[2] the site's counters of the day, absent on a cluster (they
--         are in another slot: the field is returned, for the store to add beside the call)
-- ARGV: the field, the day (YYYY-MM-DD)
-- Returns {1 when counted now (else 0: already counted today, or a visitor hash that expired,
--          which is not made again without its time to live), the fields to add 1 to}
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, {}} end
local out = {}
local now = count_segment(KEYS[1], ARGV[1], ARGV[2], KEYS[2], out)
counted(KEYS[2], out)
out.n = nil
return {now, out}
