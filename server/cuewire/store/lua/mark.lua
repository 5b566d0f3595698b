-- On a cluster: what exposures leave for one visitor (counters.lua's mark_exposure), in the
-- visitor's slot; the counters are in another, so the fields to add 1 to are returned.
-- KEYS: the visitor's exposure markers and prompt marks
-- ARGV[1]: JSON [{"x": ..., "p": ...}, ...] (mark_exposure's, indexes into KEYS)
local out = {}
for _, m in ipairs(cjson.decode(ARGV[1])) do mark_exposure(KEYS, m.x, m.p, nil, out) end
return out
