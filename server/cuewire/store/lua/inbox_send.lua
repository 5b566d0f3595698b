-- Append a message to a server process's inbox stream (inbox.py), if that process is alive.
-- KEYS[1] the inbox; ARGV[1] its MAXLEN (approximate); ARGV[2..] the message's field/value
-- pairs. A process keeps its inbox's expiry fresh while it runs and deletes it when it stops,
-- so a missing inbox means its process is gone: nil, and nothing is written (no orphan stream).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 2))
