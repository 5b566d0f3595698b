-- A socket closed: the session has no tab to push to, unless another tab took over since.
-- KEYS[1] session hash; ARGV[1] the socket id that closed
if redis.call('HGET', KEYS[1], 'sid') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'sid')
  return 1
end
return 0
