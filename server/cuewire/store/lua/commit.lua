-- Apply the engine's actions for a batch and mark its seqs done, atomically: a batch's effects
-- happen once, or not at all and then again when the client resends it.
-- KEYS[1] the tab's pending-seq zset (see ingest.lua); the keys the actions write follow.
-- ARGV[1] JSON {"seqs": [seq, ...], "ops": [[op, key index, arg, arg], ...]} where op is
--   hset (field, value), hdel (field), zadd (score, member) or zrem (member)
-- Returns 1 when applied, 0 when a seq was no longer pending (another process applied it).
local batch = cjson.decode(ARGV[1])
for _, seq in ipairs(batch.seqs) do
  if not redis.call('ZSCORE', KEYS[1], seq) then return 0 end
end
for _, op in ipairs(batch.ops) do
  local name, key = op[1], KEYS[op[2]]
  if name == 'hset' then redis.call('HSET', key, op[3], op[4])
  elseif name == 'hdel' then redis.call('HDEL', key, op[3])
  elseif name == 'zadd' then redis.call('ZADD', key, op[3], op[4])
  elseif name == 'zrem' then redis.call('ZREM', key, op[3])
  end
end
if #batch.seqs > 0 then redis.call('ZREM', KEYS[1], unpack(batch.seqs)) end
return 1
