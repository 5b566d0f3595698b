-- fold_all(keys, asks, verdicts): after governance answered a batch's firing requests
-- (govern_all.lua), write what each answer leaves when the caller made it ahead (the ask's
-- "p": store/fold.py, base.Outcomes), so a firing decided ahead takes one round trip.
-- Prepended by store/scripts.py to ingest.lua, which calls it.
-- p: {"a": index in keys of the audit stream, "n": its max length, "l": how long a firing's
--   marker lives (s) (write_record.lua's), "g": a grant's {"o": ops.lua's ops, "r":
--   write_record's r}, "s": a refusal's {"r": its record, "rs": {code or "code|rule": the
--   reason}}, "q" (optional): a refusal that queues, {"c": [its codes], "o": ops, "r": its
--   record}}
-- A refusal's record gets governance's code and its reason in its "code" and "reason"
-- fields; when it is counted, its counter field (counters.py: suppressed:<code>) is "t.c"'s
-- one field with the code appended. A code about an earlier granted show of the call
-- (lower_priority) takes that show's rule's reason. Either every ask's outcome is written,
-- or none (an ask without "p", a grant that replaces a prompt on screen, a code without a
-- reason): the caller then writes them all after the call, in order, as the records of one
-- batch always are.
-- Returns, per ask, 1 when its outcome was written (0 otherwise), and whether a granted
-- ask not written wants the whole hashes (govern_all's `whole`, for the caller's writes).
local function fold_filled(f, code, reason)
  for i = 1, #f - 1, 2 do
    if f[i] == 'code' then f[i + 1] = code elseif f[i] == 'reason' then f[i + 1] = reason end
  end
end

local function fold_all(keys, asks, verdicts)
  -- first what each answer leaves, then the writes: all of them, or none (the caller then
  -- writes them all after the call, in the order of the asks)
  local chosen, first, all = {}, '', true
  for i, r in ipairs(asks) do
    local code, replaces = verdicts[i][1], verdicts[i][2]
    local p, rec = r.p, nil
    if p and code == '' and replaces == '' then
      rec = {p.g.r, p.g.o}
    elseif p and code ~= '' then
      local reason = (first ~= '' and p.s.rs[code .. '|' .. first]) or p.s.rs[code]
      if reason then
        rec = {p.s.r, {}}
        for _, c in ipairs(p.q and p.q.c or {}) do
          if c == code then rec = {p.q.r, p.q.o} end
        end
        fold_filled(rec[1].f, code, reason)
        if rec[1].t then rec[1].t.c = {rec[1].t.c[1] .. code} end
      end
    end
    if not rec then all = false end
    chosen[i] = rec
    if code == '' and r.s and r.x == '' and first == '' then first = r.a[1] end
  end
  local written, whole = {}, false
  for i, r in ipairs(asks) do
    local rec = chosen[i]
    if all then
      apply_ops(keys, rec[2])
      write_record(keys, r.p.a, rec[1], r.p.n, r.p.l)
    elseif verdicts[i][1] == '' and r.w and r.x ~= 'shadow' then
      whole = true
    end
    written[i] = all and 1 or 0
  end
  return written, whole
end
