-- Open a server process's inbox stream (inbox.py): a START mark, and the expiry its process
-- refreshes while it runs. One key, so one slot on a cluster (MULTI does not cross nodes).
-- KEYS[1] the inbox; ARGV[1] its MAXLEN (approximate), ARGV[2] the expiry (s), ARGV[3] the
-- START kind. Returns the mark's id, to read after.
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'k', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return id
