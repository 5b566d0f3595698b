-- Renew the lease of the outbox entries a consumer has in hand (outbox.py): each one still
-- pending for this consumer is claimed again by it with JUSTID, which resets its idle time (so
-- XAUTOCLAIM elsewhere does not take a job over while its handler is still at work) and leaves
-- its delivery count alone. An entry settled meanwhile, or taken over by another consumer
-- (this one was cut off for longer than the lease), is left as it is.
-- KEYS: the stream. ARGV[1]: the group, ARGV[2]: the consumer, ARGV[3..]: the entry ids.
-- Returns how many leases were renewed.
local renewed = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local held = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
  if #held == 1 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
    renewed = renewed + 1
  end
end
return renewed
