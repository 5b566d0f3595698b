-- apply_ops(keys, ops): apply rule actions, [[op, key index, arg, arg], ...] where op is
-- hset (field, value), hdel (field), zadd (score, member) or zrem (member) and the key index
-- points into `keys`. Prepended by store/redis.py to the scripts that call it.
local function apply_ops(keys, ops)
  for _, op in ipairs(ops) do
    local name, key = op[1], keys[op[2]]
    if name == 'hset' then redis.call('HSET', key, op[3], op[4])
    elseif name == 'hdel' then redis.call('HDEL', key, op[3])
    elseif name == 'zadd' then redis.call('ZADD', key, op[3], op[4])
    elseif name == 'zrem' then redis.call('ZREM', key, op[3])
    end
  end
end
