-- The heatmap part of a batch's ingest (cuewire/heatmaps.py: the fields, the spec, the caps).
-- heatmap(KEYS, spec, fresh) counts each new event of a heatmap kind on its page's hash of the
-- day: "n:<kind>", "s:<kind>:<selector>" (a new selector field only while "#s" is under
-- spec.cs, else "o:<kind>"), "c:<kind>:<col>:<row>"; and on the day's index hash, the page's
-- path (a new path only while "#p" is under spec.cp, else "#o" and the page counts nothing).
-- spec: {"x": time to live (s), "cs": selector cap, "cp": page cap,
--        "p": [[page hash's KEYS index, index hash's KEYS index, path], ...],
--        "e": [[event index, page index (in p), kind, selector or "", cell or ""], ...]}
-- fresh: per event of the batch, 1 when it is new (ingest.lua); nil: every event in "e" is.
local function heatmap(KEYS, spec, fresh)
  local admitted, touched = {}, {}
  for _, m in ipairs(spec.e) do
    if fresh == nil or fresh[m[1]] == 1 then
      local page = spec.p[m[2]]
      local hkey, ikey, path = KEYS[page[1]], KEYS[page[2]], page[3]
      local ok = admitted[m[2]]
      if ok == nil then
        ok = redis.call('HEXISTS', ikey, path) == 1
        if not ok and (tonumber(redis.call('HGET', ikey, '#p')) or 0) < spec.cp then
          redis.call('HINCRBY', ikey, '#p', 1)
          ok = true
        end
        admitted[m[2]] = ok
      end
      touched[ikey] = true
      if ok then
        local kind, selector, cell = m[3], m[4], m[5]
        redis.call('HINCRBY', ikey, path, 1)
        redis.call('HINCRBY', hkey, 'n:' .. kind, 1)
        if cell ~= '' then redis.call('HINCRBY', hkey, 'c:' .. kind .. ':' .. cell, 1) end
        if selector ~= '' then
          local f = 's:' .. kind .. ':' .. selector
          if redis.call('HEXISTS', hkey, f) == 1 then
            redis.call('HINCRBY', hkey, f, 1)
          elseif (tonumber(redis.call('HGET', hkey, '#s')) or 0) < spec.cs then
            redis.call('HSET', hkey, f, 1)
            redis.call('HINCRBY', hkey, '#s', 1)
          else
            redis.call('HINCRBY', hkey, 'o:' .. kind, 1)
          end
        end
        touched[hkey] = true
      else
        redis.call('HINCRBY', ikey, '#o', 1)
      end
    end
  end
  for key in pairs(touched) do redis.call('EXPIRE', key, spec.x) end
end
