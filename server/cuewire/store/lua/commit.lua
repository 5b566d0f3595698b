-- Apply the engine's actions for a batch and mark its seqs done, atomically: a batch's effects
-- happen once, or not at all and then again when the client resends it.
-- KEYS[1] the tab's pending-seq zset (see ingest.lua); the keys the actions write follow.
-- ARGV[1] JSON {"seqs": [seq, ...], "ops": [[op, key index, arg, arg], ...]} (see ops.lua,
--   prepended by store/redis.py)
-- Returns 1 when applied, 0 when a seq was no longer pending (another process applied it).
local batch = cjson.decode(ARGV[1])
for _, seq in ipairs(batch.seqs) do
  if not redis.call('ZSCORE', KEYS[1], seq) then return 0 end
end
apply_ops(KEYS, batch.ops)
if #batch.seqs > 0 then redis.call('ZREM', KEYS[1], unpack(batch.seqs)) end
return 1
