-- read(key, fields, prefixes): the fields of hash `key` named in `fields` and those whose
-- names start with one of `prefixes`, flat (field, value, ...), each field once.
-- One HGETALL filtered here: cheaper inside Redis than an HMGET and an HSCAN per prefix (each
-- HSCAN ... MATCH walks and copies the whole hash again; bench/README.md, redis_cost).
-- Prepended by store/redis.py to the scripts that call it (ingest.lua, open_session.lua).
local function read(key, fields, prefixes)
  local out = {}
  local all = redis.call('HGETALL', key)
  if #all == 0 then return out end
  local named = {}
  for _, f in ipairs(fields) do named[f] = true end
  local np = #prefixes
  local lens = {}
  for i = 1, np do lens[i] = #prefixes[i] end
  for j = 1, #all, 2 do
    local f = all[j]
    local take = named[f]
    if not take then
      for i = 1, np do
        if string.sub(f, 1, lens[i]) == prefixes[i] then take = true; break end
      end
    end
    if take then out[#out + 1] = f; out[#out + 1] = all[j + 1] end
  end
  return out
end
