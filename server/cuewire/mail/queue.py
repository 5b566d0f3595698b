"""The send queue of emails: the durable outbox's ``email`` channel (outbox.py: a Redis stream
read by a consumer group, retries with backoff and jitter, takeover after a crash, dead
letters), plus what an email needs before it goes on it, in one script per call:

- de-duplication: a deadline's firing queues its email once, however often it is retried
  (``id:<job id>``, kept 7 days);
- unsubscribes (``unsub``: a set of ``<site> <address>``);
- the policy's caps per visitor (``cap:<site>:<visitor>:d<day>`` / ``:w<week>``, counters
  with an expiry, counted when queued);
- quiet hours: a job due later waits in ``held`` (a sorted set by due time, epoch ms of the
  mailer's clock, its job in the hash ``held:jobs``) and :meth:`MailQueue.release` moves it
  onto the outbox's stream once due, in one script (a crash cannot lose it in between).

Every key is one of the outbox's channel (``Keys.outbox("email", part)``), so all share its
hash tag: on a Redis Cluster each script touches one slot.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..clock import DAY_MS, WEEK_MS
from ..keys import Keys
from ..outbox import Outbox, job_json
from ..store.shared import Client, guard

CHANNEL = "email"
DEDUP_S = 7 * 86_400
RELEASE_COUNT = 100


class MailJob(msgspec.Struct, kw_only=True):
    """One email on its way: everything needed to send it, rendered when it was queued."""

    id: str
    site: str
    session: str
    visitor: str
    rule: str
    template: str
    to: str
    subject: str
    html: str
    text: str
    unsubscribe_url: str
    queued_ms: int
    url: str = ""  # the page the visitor was on when the rule fired


class Caps(msgspec.Struct, frozen=True):
    """Emails per visitor (0: no cap), counted per UTC day and per week when queued."""

    per_day: int = 0
    per_week: int = 0


# KEYS: stream, held, held jobs, unsub, dedup marker, day counter, week counter
# ARGV: job id, outbox job JSON, due ms, now ms, "<site> <address>", day cap, week cap,
#       day ttl s, week ttl s, dedup ttl s
# Returns "" (queued), "dup" (this job was queued before), or the code that stopped it.
PUT = """
if redis.call('EXISTS', KEYS[5]) == 1 then return 'dup' end
if redis.call('SISMEMBER', KEYS[4], ARGV[5]) == 1 then return 'unsubscribed' end
local day_cap, week_cap = tonumber(ARGV[6]), tonumber(ARGV[7])
if day_cap > 0 and tonumber(redis.call('GET', KEYS[6]) or '0') >= day_cap then
  return 'email_cap_day'
end
if week_cap > 0 and tonumber(redis.call('GET', KEYS[7]) or '0') >= week_cap then
  return 'email_cap_week'
end
redis.call('INCR', KEYS[6]); redis.call('EXPIRE', KEYS[6], ARGV[8])
redis.call('INCR', KEYS[7]); redis.call('EXPIRE', KEYS[7], ARGV[9])
redis.call('SET', KEYS[5], '1', 'EX', ARGV[10])
if tonumber(ARGV[3]) > tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
else
  redis.call('XADD', KEYS[1], '*', 'j', ARGV[2], 'a', 0)
end
return ''
"""

# KEYS: stream, held, held jobs. ARGV: now ms, count. Returns how many went on the stream.
RELEASE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local job = redis.call('HGET', KEYS[3], id)
  if job then redis.call('XADD', KEYS[1], '*', 'j', job, 'a', 0) end
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
return #ids
"""


def unsub_member(site: str, address: str) -> str:
    return f"{site} {address.strip().lower()}"


def job_data(job: MailJob) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(job)
    return data


class MailQueue:
    """Emails onto ``outbox`` (the ``email`` channel), held, capped and refused as above."""

    def __init__(self, outbox: Outbox, client: Client, keys: Keys) -> None:
        self.outbox = outbox
        self._r = client

        def key(part: str) -> str:
            return keys.outbox(CHANNEL, part)

        self._key = key
        self._held, self._held_jobs, self._unsub = key("held"), key("held:jobs"), key("unsub")
        self._put = client.register_script(PUT)
        self._release = client.register_script(RELEASE)

    async def put(self, job: MailJob, due_ms: int, now_ms: int, caps: Caps) -> str:
        """Queue ``job`` (held until ``due_ms`` when that is later than ``now_ms``) unless it
        was queued before, its address unsubscribed or a cap is reached: "" when queued,
        "dup", or the code that stopped it."""
        day, week = job.queued_ms // DAY_MS, job.queued_ms // WEEK_MS
        counter = self._key(f"cap:{job.site}:{job.visitor}")
        keys = [
            self.outbox.key("stream"),
            self._held,
            self._held_jobs,
            self._unsub,
            self._key(f"id:{job.id}"),
            f"{counter}:d{day}",
            f"{counter}:w{week}",
        ]
        args: list[str | int] = [
            job.id,
            job_json(job.id, job_data(job)),
            due_ms,
            now_ms,
            unsub_member(job.site, job.to),
            caps.per_day,
            caps.per_week,
            2 * DAY_MS // 1000,
            2 * WEEK_MS // 1000,
            DEDUP_S,
        ]
        async with guard("queue an email"):
            return str(await self._put(keys=keys, args=args))

    async def release(self, now_ms: int) -> int:
        """Move the held emails due by ``now_ms`` onto the outbox; how many."""
        keys = [self.outbox.key("stream"), self._held, self._held_jobs]
        async with guard("release held emails"):
            return int(await self._release(keys=keys, args=[now_ms, RELEASE_COUNT]))

    async def held(self) -> int:
        async with guard("count held emails"):
            return int(await self._r.zcard(self._held))

    async def unsubscribe(self, site: str, address: str) -> None:
        async with guard("unsubscribe"):
            await self._r.sadd(self._unsub, unsub_member(site, address))

    async def unsubscribed(self, site: str, address: str) -> bool:
        async with guard("read unsubscribes"):
            return bool(await self._r.sismember(self._unsub, unsub_member(site, address)))
