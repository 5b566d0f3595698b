-- read(key, fields, prefixes): the fields of hash `key` named in `fields` and those whose
-- names start with one of `prefixes`, flat (field, value, ...; a field may appear twice).
-- Prepended by store/redis.py to the scripts that call it (ingest.lua, open_session.lua).
local function read(key, fields, prefixes)
  local out = {}
  for i = 1, #fields, 1000 do  -- in slices: unpack has a limit
    local slice = {unpack(fields, i, math.min(i + 999, #fields))}
    local values = redis.call('HMGET', key, unpack(slice))
    for j, f in ipairs(slice) do
      if values[j] then out[#out + 1] = f; out[#out + 1] = values[j] end
    end
  end
  for _, prefix in ipairs(prefixes) do
    local pattern = string.gsub(prefix, '[%*%?%[%]\\]', '\\%0') .. '*'
    local cursor = '0'
    repeat
      local page = redis.call('HSCAN', key, cursor, 'MATCH', pattern, 'COUNT', 1000)
      cursor = page[1]
      for j = 1, #page[2], 2 do out[#out + 1] = page[2][j]; out[#out + 1] = page[2][j + 1] end
    until cursor == '0'
  end
  return out
end
