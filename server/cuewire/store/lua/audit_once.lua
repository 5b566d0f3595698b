-- Append an audit record once per firing: a firing claimed again after a crash, or fired by
-- two processes, leaves one record.
-- KEYS: audit stream, marker of the firing; ARGV: stream max length, marker ttl_s,
--       then (field, value) pairs
-- Returns 1 when written, 0 when this firing was already audited.
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[2])) then return 0 end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', tonumber(ARGV[1]), '*', unpack(ARGV, 3))
return 1
