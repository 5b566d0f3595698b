-- The heatmap part of a batch's ingest (cuewire/heatmaps.py: the fields, the spec, the caps).
-- heatmap(KEYS, spec, fresh) counts each new event of a heatmap kind on its page's hash of the
-- day: "n:<kind>", "s:<kind>:<selector>" (a new selector field only while "#s" is under
-- spec.cs, else "o:<kind>"), "c:<kind>:<col>:<row>" (an event with a layout class counts
-- "n@<layout>:<kind>" and "w@<layout>:<width>" too, and its cell as
-- "c@<layout>:<kind>:<col>:<row>" instead); and on the day's index hash, the page's path (a
-- new path only while "#p" is under spec.cp, else "#o" and the page counts nothing).
-- The batch's counts are summed first: one HINCRBY per field, one HMGET per page.
-- spec: {"x": time to live (s), "cs": selector cap, "cp": page cap,
--        "p": [[page hash's KEYS index, index hash's KEYS index, path], ...],
--        "e": [[event index, page index (in p), kind, selector or "", cell or "",
--               (with a viewport width:) layout class, width counted], ...]}
-- fresh: per event of the batch, 1 when it is new (ingest.lua); nil: every event in "e" is.
local function heatmap(KEYS, spec, fresh)
  local pages, order = {}, {}
  for _, m in ipairs(spec.e) do
    if fresh == nil or fresh[m[1]] == 1 then
      local p = pages[m[2]]
      if not p then
        p = {events = 0, counts = {}, sels = {}, kinds = {}, order = {}}
        pages[m[2]] = p
        order[#order + 1] = m[2]
      end
      local kind, selector, cell, layout = m[3], m[4], m[5], m[6] or ''
      p.events = p.events + 1
      local f = 'n:' .. kind
      p.counts[f] = (p.counts[f] or 0) + 1
      local c = 'c:'
      if layout ~= '' then
        c = 'c@' .. layout .. ':'
        f = 'n@' .. layout .. ':' .. kind
        p.counts[f] = (p.counts[f] or 0) + 1
        f = 'w@' .. layout .. ':' .. m[7]
        p.counts[f] = (p.counts[f] or 0) + 1
      end
      if cell ~= '' then
        f = c .. kind .. ':' .. cell
        p.counts[f] = (p.counts[f] or 0) + 1
      end
      if selector ~= '' then
        f = 's:' .. kind .. ':' .. selector
        if not p.sels[f] then
          p.order[#p.order + 1] = f
          p.kinds[f] = kind
        end
        p.sels[f] = (p.sels[f] or 0) + 1
      end
    end
  end
  local touched = {}
  for _, i in ipairs(order) do
    local p, page = pages[i], spec.p[i]
    local hkey, ikey, path = KEYS[page[1]], KEYS[page[2]], page[3]
    touched[ikey] = true
    local ok = redis.call('HEXISTS', ikey, path) == 1
    if not ok and (tonumber(redis.call('HGET', ikey, '#p')) or 0) < spec.cp then
      redis.call('HINCRBY', ikey, '#p', 1)
      ok = true
    end
    if ok then
      redis.call('HINCRBY', ikey, path, p.events)
      for f, n in pairs(p.counts) do redis.call('HINCRBY', hkey, f, n) end
      if #p.order > 0 then
        local held = redis.call('HMGET', hkey, '#s', unpack(p.order))
        local room = spec.cs - (tonumber(held[1]) or 0)
        local added, over = 0, {}
        for j, f in ipairs(p.order) do
          local n = p.sels[f]
          if held[j + 1] then
            redis.call('HINCRBY', hkey, f, n)
          elseif added < room then
            redis.call('HINCRBY', hkey, f, n)
            added = added + 1
          else
            over[p.kinds[f]] = (over[p.kinds[f]] or 0) + n
          end
        end
        if added > 0 then redis.call('HINCRBY', hkey, '#s', added) end
        for kind, n in pairs(over) do redis.call('HINCRBY', hkey, 'o:' .. kind, n) end
      end
      redis.call('EXPIRE', hkey, spec.x)
    else
      redis.call('HINCRBY', ikey, '#o', p.events)
    end
  end
  for key in pairs(touched) do redis.call('EXPIRE', key, spec.x) end
end
