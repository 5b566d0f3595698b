-- read(key, fields, prefixes): the fields of hash `key` named in `fields` and those whose
-- names start with one of `prefixes`, flat (field, value, ...), each field once.
-- holds(key, fields, prefixes, expected): whether those fields of `key` are exactly the
-- fields and values of `expected` (a map), without building the list.
-- One HGETALL filtered here: cheaper inside Redis than an HMGET and an HSCAN per prefix (each
-- HSCAN ... MATCH walks and copies the whole hash again; bench/README.md, redis_cost).
-- Prepended by store/redis.py to the scripts that call it (ingest.lua, open_session.lua).

-- a function that says whether a field is one of `fields` or starts with one of `prefixes`
local function wanted(fields, prefixes)
  local named = {}
  for _, f in ipairs(fields) do named[f] = true end
  local sub, np, lens = string.sub, #prefixes, {}
  for i = 1, np do lens[i] = #prefixes[i] end
  return function(f)
    if named[f] then return true end
    for i = 1, np do
      if sub(f, 1, lens[i]) == prefixes[i] then return true end
    end
    return false
  end
end

local function read(key, fields, prefixes)
  local out = {}
  local all = redis.call('HGETALL', key)
  if #all == 0 then return out end
  local want = wanted(fields, prefixes)
  for j = 1, #all, 2 do
    if want(all[j]) then out[#out + 1] = all[j]; out[#out + 1] = all[j + 1] end
  end
  return out
end

local function holds(key, fields, prefixes, expected)
  local all = redis.call('HGETALL', key)
  local want, count = wanted(fields, prefixes), 0
  for j = 1, #all, 2 do
    local f = all[j]
    if want(f) then
      if expected[f] ~= all[j + 1] then return false end
      count = count + 1
    end
  end
  for _ in pairs(expected) do count = count - 1 end
  return count == 0
end
