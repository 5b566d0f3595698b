-- Put one dead-lettered job back on the outbox's stream with its attempts reset (outbox.py).
-- KEYS: the stream, the dead list. ARGV[1]: the job's id; ARGV[2]: how many entries to look at.
-- Returns 1 when found and queued again, 0 when no dead letter has that id.
local entries = redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[2]) - 1)
for _, raw in ipairs(entries) do
  local dead = cjson.decode(raw)
  if dead.id == ARGV[1] then
    redis.call('LREM', KEYS[2], 1, raw)
    redis.call('XADD', KEYS[1], '*', 'j', dead.j, 'a', 0)
    return 1
  end
end
return 0
