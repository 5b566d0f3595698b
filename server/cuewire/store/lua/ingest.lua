-- Admit and apply one batch of events to a session in one round trip.
-- KEYS: session hash, recent-events list, seen-seq zset, visitor hash, live stream,
--       pending-seq zset (stored, rule actions not yet applied: see commit.lua),
--       visitor rate key, address rate key, session names hash, visitor names hash,
--       the visitor's sessions (zset, keys.visitor_sessions)
--       (on a cluster the live stream and the address key are in other slots: store/redis.py
--       passes the session hash in their place, live stream max length 0, and writes the
--       live stream itself)
-- ARGV: now_ms, session_ttl_s, visitor_ttl_s, keep_recent, socket_id, visitor_id,
--       live stream max length (0: no live stream), session id,
--       then one JSON array with, per event, [seq, "", incr, set, setnx, visitor_incr,
--       visitor_set, clear_if] as facts.py encodes its changes (lists of fields, maps of
--       field -> value; clear_if: session fields set to "" only while they hold the value)
-- ARGV[10]: which fields to return, JSON {"s": [session fields], "sp": [session field
--   prefixes], "v": [visitor fields], "vp": [visitor field prefixes]} (RuleSet.fields: what
--   the engine reads), or "" for the whole hashes
-- ARGV[11]: the gate, JSON {"vi": visitor interval ms (0: no limit), "vb": visitor burst,
--   "ai"/"ab": the same per address, "caps": {kind: cap}, "names": per event
--   [[scope ("s"/"v"), kind, name], ...]}, or "" to admit every event. On a cluster the
--   address key is in another slot: its limit was asked first (address_rate.lua), "ai" is 0
--   and "ag"/"ar" are its answer (events granted, retry ms)
-- ARGV[12]: the facts the caller decided this batch from, JSON {"s": {field: value}, "v":
--   {field: value}} (its copy of what ARGV[10] names, as they were before this batch), or ""
-- ARGV[13]: the caller's actions for this batch, as commit.lua's ARGV[1] (their key indexes
--   point into KEYS, past the eleven above)
-- ARGV[14]: the caller's firing requests for this batch, as govern_all.lua's `asks`, or "";
--   an ask may carry the writes of its outcomes ("p", fold.lua: its keys are in KEYS too)
-- ARGV[15]: what the batch's events count (counters.lua's tally_events), JSON {"k": index in
--   KEYS of the day's counters, or 0 on a cluster (the fields are then returned), "e": [...],
--   "s": [index in KEYS of the visitor hash, field, day]: the learned segment the caller's
--   decision assigned (counters.lua's count_segment, when that decision stands), optional},
--   or ""
-- ARGV[16...]: the events' JSON, one per event, in the batch's order (passed apart, not
--   escaped into ARGV[9]: less to send and to decode); then, optionally, heatmap.lua's spec
-- When ARGV[12] is exactly what the store holds and every event of the batch is new and
-- admitted, the caller's decision stands: the actions are applied with the batch and its seqs
-- are done (not pending), governance answers its firing requests, and no facts are returned
-- (but the whole hashes when a granted show asked for them and its outcome was not written
-- here: fold.lua). Otherwise the batch is stored as
-- without them and the facts after it are returned, for the caller to decide again.
--
-- Admission first. Rate: GCRA (a token bucket kept as one theoretical arrival time per key),
-- so the budget survives reconnects; the first `granted` events get a token from both
-- buckets. Caps: each names hash holds the names seen (field = name) and a count per kind
-- ("#kind"); an event whose new names would pass a kind's cap is refused and adds nothing
-- (cap 0: none). Events not admitted are not stored: the client may resend them.
--
-- Then the admitted events: changes of new events are merged (counters summed, last set
-- wins, first setnx wins) and written once per field; resent events (a seq already seen
-- from this tab) change nothing. An unverified identify (user_verified "0") never
-- downgrades a verified visitor: it keeps the verified user_id and user_verified (its
-- traits are still set). A new seq is also marked pending until commit.lua applies the
-- engine's actions for it (unless this call applies them: decided ahead); a resend of a
-- pending seq changes no facts but is handed to the engine again. The keys' TTLs are
-- refreshed once a minute at most (see "Time to live" below).
-- Returns {flags (1 new, 2 resent while pending, 0 resent and done or not admitted),
--          session facts (flat), visitor facts (flat),
--          {granted, retry_ms, per event: "" or the kind of the cap it hit},
--          1 when the caller's actions were applied (the facts are then empty), else 0,
--          governance's verdicts on the caller's requests (when applied),
--          the counter fields to add 1 to (on a cluster, else empty),
--          per request, 1 when what its verdict leaves was written (fold.lua), else 0}
local skey, ekey, qkey, vkey, pkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6]
local now, sttl, vttl, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local live_max, session_id = tonumber(ARGV[7]), ARGV[8]
local batch = cjson.decode(ARGV[9])
local n = #batch
local granted, retry, capped = n, 0, {}
for e = 1, n do capped[e] = '' end
if ARGV[11] ~= nil and ARGV[11] ~= '' then
  local gate = cjson.decode(ARGV[11])
  local anow = tonumber(now)

  local function available(key, interval, burst)
    if interval <= 0 then return n, 0 end
    local tat = tonumber(redis.call('GET', key)) or anow
    if tat < anow then tat = anow end
    local avail = math.floor((anow + interval * burst - tat) / interval)
    if avail < 0 then avail = 0 end
    return avail, tat
  end
  local function take(key, interval, tat, k)
    if interval <= 0 then return 0 end
    local new_tat = tat + k * interval
    if k > 0 then
      redis.call('SET', key, string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - anow) + 1000)
    end
    return new_tat
  end
  -- when the next token comes back to a bucket
  local function wait(interval, burst, tat)
    if interval <= 0 then return 0 end
    return math.max(0, math.ceil(tat + interval - interval * burst - anow))
  end

  local v_avail, v_tat = available(KEYS[7], gate.vi, gate.vb)
  local a_avail, a_tat = available(KEYS[8], gate.ai, gate.ab)
  granted = math.min(n, v_avail, a_avail)
  if gate.ag then granted = math.min(granted, gate.ag) end  -- the address, asked first
  v_tat = take(KEYS[7], gate.vi, v_tat, granted)
  a_tat = take(KEYS[8], gate.ai, a_tat, granted)
  if granted < n then
    retry = math.max(wait(gate.vi, gate.vb, v_tat), wait(gate.ai, gate.ab, a_tat), gate.ar or 0)
  end

  local owners = {s = KEYS[9], v = KEYS[10]}
  local touched = {}
  for e = 1, granted do
    local hit = ''
    local adds, pending_of = {}, {}
    for _, c in ipairs(gate.names[e] or {}) do
      local key, kind, name = owners[c[1]], c[2], c[3]
      if redis.call('HEXISTS', key, name) == 0 then
        local counter = '#' .. kind
        local pending = pending_of[key .. '\0' .. counter] or 0
        local count = (tonumber(redis.call('HGET', key, counter)) or 0) + pending
        local cap = tonumber(gate.caps[kind]) or 0
        if cap > 0 and count >= cap then
          hit = kind
          break
        end
        pending_of[key .. '\0' .. counter] = pending + 1
        adds[#adds + 1] = {key, counter, name}
      end
    end
    if hit == '' then
      for _, a in ipairs(adds) do
        if redis.call('HSETNX', a[1], a[3], '1') == 1 then
          redis.call('HINCRBY', a[1], a[2], 1)
        end
        touched[a[1]] = true
      end
    end
    capped[e] = hit
  end
  if touched[KEYS[9]] then redis.call('EXPIRE', KEYS[9], sttl + 300) end
  if touched[KEYS[10]] then redis.call('EXPIRE', KEYS[10], vttl) end
end
local want = nil
if ARGV[10] ~= nil and ARGV[10] ~= '' then want = cjson.decode(ARGV[10]) end

local decided = false
if want and ARGV[12] ~= nil and ARGV[12] ~= '' then
  local expected = cjson.decode(ARGV[12])
  decided = granted == n and holds(skey, want.s, want.sp, expected.s)
    and holds(vkey, want.v, want.vp, expected.v)
end

local fresh, accepted = {}, {}
local incr, set, setnx, vincr, vset, clear_if = {}, {}, {}, {}, {}, {}

local function add(counters, fields)
  for _, f in ipairs(fields) do counters[f] = (counters[f] or 0) + 1 end
end
local function put(target, fields, first_wins)
  for f, v in pairs(fields) do
    if not (first_wins and target[f]) then target[f] = v end
  end
end

-- the visitor hash's verified flag, and last_seen (always set: none means a new hash)
local vheld = redis.call('HMGET', vkey, 'user_verified', 'last_seen')
local verified = vheld[1] == '1'

-- redis.call(cmd, key, pre..., values...) in slices (unpack has a limit); the replies, joined
local function sliced(cmd, key, pre, values)
  local out = {}
  for i = 1, #values, 1000 do
    local args = {cmd, key}
    for _, a in ipairs(pre) do args[#args + 1] = a end
    for j = i, math.min(i + 999, #values) do args[#args + 1] = values[j] end
    local reply = redis.call(unpack(args))
    if type(reply) == 'table' then
      for j = 1, #args - 2 - #pre do out[#out + 1] = reply[j] end
    else
      out[#out + 1] = reply
    end
  end
  return out
end

-- Which admitted seqs this tab sent before: one ZMSCORE for the batch. A seq repeated within
-- the batch counts as sent before (and pending: its first copy is).
local asked = {}
for e = 1, granted do
  if capped[e] == '' then asked[#asked + 1] = batch[e][1] end
end
local known = {}
if #asked > 0 then known = sliced('ZMSCORE', qkey, {}, asked) end
local new_seqs, in_batch, j = {}, {}, 0
for e, ev in ipairs(batch) do
  local seq = ev[1]
  local is_new = 0
  if e <= granted and capped[e] == '' then
    j = j + 1
    if in_batch[seq] then
      is_new = 2
    elseif known[j] then
      if redis.call('ZSCORE', pkey, seq) then is_new = 2 end
    else
      is_new = 1
      in_batch[seq] = true
      new_seqs[#new_seqs + 1] = seq
    end
  end
  fresh[e] = is_new
  if is_new ~= 1 then decided = false end
  if is_new == 1 then
    add(incr, ev[3]); put(set, ev[4], false); put(setnx, ev[5], true)
    local vs = ev[7]
    if type(vs) == 'table' and vs.user_verified == '0' and (verified or vset.user_verified == '1') then
      vs.user_id = nil; vs.user_verified = nil
    end
    add(vincr, ev[6]); put(vset, vs, false)
    if type(ev[8]) == 'table' then
      for f, v in pairs(ev[8]) do
        clear_if[f] = clear_if[f] or {}
        clear_if[f][v] = true
      end
    end
    accepted[#accepted + 1] = ARGV[15 + e]
  end
end
-- Seen, and pending until commit.lua applies the engine's actions for them; when this call
-- applies the caller's actions (decided), the new seqs are done at once: never pending.
local pairs_of = {}
for _, seq in ipairs(new_seqs) do pairs_of[#pairs_of + 1] = seq; pairs_of[#pairs_of + 1] = seq end
if #new_seqs > 0 then
  sliced('ZADD', qkey, {}, pairs_of)
  redis.call('ZREMRANGEBYRANK', qkey, 0, -1025)
  if not decided then
    sliced('ZADD', pkey, {}, pairs_of)
    redis.call('ZREMRANGEBYRANK', pkey, 0, -1025)
  end
end

for f, n in pairs(incr) do redis.call('HINCRBY', skey, f, n) end
-- set-if-absent: the visitor and start first, then the events' (the first wins), read at once
local first = {{'visitor', ARGV[6]}, {'started', now}}
local listed = {visitor = true, started = true}
for f, v in pairs(setnx) do
  if not listed[f] then first[#first + 1] = {f, v}; listed[f] = true end
end
local names_of = {}
for i, fv in ipairs(first) do names_of[i] = fv[1] end
local held = sliced('HMGET', skey, {}, names_of)
local values = {}
for i, fv in ipairs(first) do
  if not held[i] then values[fv[1]] = fv[2] end
end
for f, v in pairs(set) do values[f] = v end
if ARGV[5] ~= '' then values.sid = ARGV[5] end
local flat = {}
for f, v in pairs(values) do flat[#flat + 1] = f; flat[#flat + 1] = v end
if #flat > 0 then sliced('HSET', skey, {}, flat) end
for f, vals in pairs(clear_if) do
  local current = redis.call('HGET', skey, f)
  if current and vals[current] then redis.call('HSET', skey, f, '') end
end
for f, n in pairs(vincr) do redis.call('HINCRBY', vkey, f, n) end
flat = {'last_seen', now}
for f, v in pairs(vset) do flat[#flat + 1] = f; flat[#flat + 1] = v end
sliced('HSET', vkey, {}, flat)

local recent = 0
if #accepted > 0 then
  recent = sliced('LPUSH', ekey, {}, accepted)
  recent = recent[#recent]
  if recent > keep then redis.call('LTRIM', ekey, 0, keep - 1) end
  if live_max > 0 then
    -- the session's device class (open_session.lua's describe) goes with the batch, so a
    -- replay opens the session as the server did (learn/dataset.py); never the user agent
    local entry = {'at', now, 'session', session_id, 'visitor', ARGV[6],
                   'events', '[' .. table.concat(accepted, ',') .. ']'}
    local device = redis.call('HGET', skey, 'device')
    if device then entry[#entry + 1] = 'device'; entry[#entry + 1] = device end
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', live_max, '*', unpack(entry))
  end
end
-- measurement and funnels: what the new events count (counters.lua)
local tallied = {}
if ARGV[15] ~= '' then
  local spec = cjson.decode(ARGV[15])
  local ckey = nil
  if spec.k > 0 then ckey = KEYS[spec.k] end
  tally_events(KEYS, spec, fresh, now, ckey, tallied)
  -- the learned segment the caller's decision assigned: only when that decision stands
  local assigned = spec.s
  if decided and assigned then
    count_segment(KEYS[assigned[1]], assigned[2], assigned[3], ckey, tallied)
  end
  counted(ckey, tallied)
  tallied.n = nil
end
-- Heatmaps (heatmap.lua): the spec after the events' JSON (ARGV[16 + n]), when there is one
if ARGV[16 + n] then heatmap(KEYS, cjson.decode(ARGV[16 + n]), fresh) end
-- Time to live: the session's keys outlive its last event by the grace period, the visitor's
-- by visitor_ttl, each plus REFRESH_S, so that a refresh done in the last REFRESH_S seconds
-- need not be done again: the seen set's (set with the others, refreshed or made by no other
-- script) tells when the last one was. A key this batch made has none yet: refreshed now.
local REFRESH_S = 60
local sfull, vfull = sttl + 300 + REFRESH_S, vttl + REFRESH_S  -- open_session.lua: the same
if redis.call('PTTL', qkey) <= (sfull - REFRESH_S) * 1000 or not held[1] or not vheld[2] then
  for _, k in ipairs({skey, ekey, qkey, pkey}) do redis.call('EXPIRE', k, sfull) end
  redis.call('EXPIRE', vkey, vfull)
  -- the visitor's sessions: this one as long as its keys (open_session.lua: the same)
  redis.call('ZADD', KEYS[11], now, session_id)
  redis.call('ZREMRANGEBYSCORE', KEYS[11], '-inf', '(' .. (tonumber(now) - sfull * 1000))
  redis.call('EXPIRE', KEYS[11], sfull)
else
  if recent > 0 and recent == #accepted then redis.call('EXPIRE', ekey, sfull) end  -- new
  if #new_seqs > 0 and not decided then redis.call('EXPIRE', pkey, sfull) end
end
local admission = {granted, retry, capped}
if decided then
  local actions = cjson.decode(ARGV[13])
  apply_ops(KEYS, actions.ops)
  local left = {}  -- seqs of earlier batches still pending (this batch's never were)
  for _, seq in ipairs(actions.seqs) do
    if not in_batch[tonumber(seq)] then left[#left + 1] = seq end
  end
  if #left > 0 then redis.call('ZREM', pkey, unpack(left)) end
  if ARGV[14] ~= nil and ARGV[14] ~= '' then
    local asks = cjson.decode(ARGV[14])
    local verdicts = govern_all(skey, vkey, asks)
    -- what the answers leave, for the asks whose writes the caller made ahead (fold.lua)
    local written, whole = fold_all(KEYS, asks, verdicts)
    if whole then
      return {fresh, redis.call('HGETALL', skey), redis.call('HGETALL', vkey), admission, 1,
              verdicts, tallied, written}
    end
    return {fresh, {}, {}, admission, 1, verdicts, tallied, written}
  end
  return {fresh, {}, {}, admission, 1, {}, tallied, {}}
end
if not want then
  return {fresh, redis.call('HGETALL', skey), redis.call('HGETALL', vkey), admission, 0, {},
        tallied, {}}
end
return {fresh, read(skey, want.s, want.sp), read(vkey, want.v, want.vp), admission, 0, {},
        tallied, {}}
