-- Write what a firing leaves behind in one round trip: the facts its rules set (ops.lua's
-- ops) and its audit records (write_record.lua: once per firing when it has one).
-- KEYS: the audit stream, then the keys the ops write and the firings' markers
-- ARGV[1]: JSON {"ops": [...], "records": [write_record's r, ...]}
-- ARGV[2]: the stream's max length (approximate), ARGV[3]: how long a marker lives (s)
-- Returns the number of records appended.
local batch = cjson.decode(ARGV[1])
local maxlen, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
apply_ops(KEYS, batch.ops)
local written = 0
for _, r in ipairs(batch.records) do
  written = written + write_record(KEYS, 1, r, maxlen, ttl)
end
return written
