-- write_record(keys, audit, r, maxlen, ttl): append one audit record to the stream
-- keys[audit], once per firing when it has one (a firing claimed again after a crash, or
-- fired by two processes, leaves one record), with the outbox job it carries and what it
-- counts. Prepended by store/scripts.py to the scripts that call it (record.lua, fold.lua).
-- r: {"m": index in keys of the firing's marker, or 0 for a record without a firing,
--   "f": [field, value, ...], "o" (optional): an outbox job {"k": index in keys of its
--   outbox stream, "j": the job's JSON}, and "t" when the record is counted (counters.lua):
--   {"k": index of the day's counters, "c": [fields to add 1 to], "x"/"p": mark_exposure's,
--   or absent on a cluster}}
-- maxlen: the stream's max length (approximate), ttl: how long a marker lives (s)
-- Returns 1 when the record was appended, else 0.
local function write_record(keys, audit, r, maxlen, ttl)
  if r.m ~= 0 and not redis.call('SET', keys[r.m], '1', 'NX', 'EX', ttl) then return 0 end
  redis.call('XADD', keys[audit], 'MAXLEN', '~', maxlen, '*', unpack(r.f))
  if r.o then -- an outbox job the record carries (outbox.py): queued with it, once
    redis.call('XADD', keys[r.o.k], '*', 'j', r.o.j, 'a', 0)
  end
  -- measurement: counted with the record, once per firing as it is
  if r.t then
    local ckey, out = keys[r.t.k], {}
    for _, f in ipairs(r.t.c) do bump(ckey, f, out) end
    mark_exposure(keys, r.t.x, r.t.p, ckey, out)
    counted(ckey, out)
  end
  return 1
end
