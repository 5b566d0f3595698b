-- Write what a firing leaves behind in one round trip: the facts its rules set (ops.lua's
-- ops) and its audit records, each appended once per firing when it has one (a firing
-- claimed again after a crash, or fired by two processes, leaves one record).
-- KEYS: the audit stream, then the keys the ops write and the firings' markers
-- ARGV[1]: JSON {"ops": [...], "records": [{"m": index in KEYS of the firing's marker, or 0
--   for a record without a firing, "f": [field, value, ...], "o" (optional): an outbox job
--   {"k": index in KEYS of its outbox stream, "j": the job's JSON}, and "t" when the
--   record is counted (counters.lua): {"k": index of the day's counters, "c": [fields to
--   add 1 to], "x"/"p": mark_exposure's, or absent on a cluster}}, ...]}
-- ARGV[2]: the stream's max length (approximate), ARGV[3]: how long a marker lives (s)
-- Returns the number of records appended.
local batch = cjson.decode(ARGV[1])
local maxlen, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
apply_ops(KEYS, batch.ops)
local written = 0
for _, r in ipairs(batch.records) do
  if r.m == 0 or redis.call('SET', KEYS[r.m], '1', 'NX', 'EX', ttl) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', unpack(r.f))
    written = written + 1
    if r.o then -- an outbox job the record carries (outbox.py): queued with it, once
      redis.call('XADD', KEYS[r.o.k], '*', 'j', r.o.j, 'a', 0)
    end
    -- measurement: counted with the record, once per firing as it is
    if r.t then
      local ckey, out = KEYS[r.t.k], {}
      for _, f in ipairs(r.t.c) do bump(ckey, f, out) end
      mark_exposure(KEYS, r.t.x, r.t.p, ckey, out)
      counted(ckey, out)
    end
  end
end
return written
