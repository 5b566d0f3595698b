"""The durable send queue of emails, in the store (one Redis, a cluster or the embedded one).

Every key shares the hash tag ``{<prefix>:mail}``, so each script touches one slot:

- ``due`` (sorted set): job id -> when it may be sent (epoch ms): queued, waiting for the
  end of quiet hours, waiting to be retried, or leased to a sender;
- ``jobs`` (hash): job id -> the job (JSON: the rendered message and its attempts);
- ``dead`` (list): jobs that failed for good, newest first (the last 1,000);
- ``unsub`` (set): ``<site> <address>`` of every address that unsubscribed;
- ``cap:<site>:<visitor>:d<day>`` / ``:w<week>`` (counters with an expiry): emails queued.

A claim is a **lease**, as deadlines are (timers.py): the claim moves each due job's score
to the end of its lease, so a job whose sender died (a crash between the claim and the
answer) is claimed again once the lease ends. A job is removed only once the SMTP server
answered. So a job is sent at least once; once in every test where the process stops
without crashing mid-conversation (its Message-ID lets a receiver tell a resend).

:class:`SendQueue` is what the mailer needs from a queue; :class:`MailQueue` is this one.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from ..keys import Keys
from ..store.shared import Client, guard

DEAD_MAX = 1000
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS


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
    attempts: int = 0
    error: str = ""  # the last failure, for people


class Caps(msgspec.Struct, frozen=True):
    """Emails per visitor (0: no cap), counted per UTC day and per week when queued."""

    per_day: int = 0
    per_week: int = 0


class SendQueue(Protocol):
    async def put(self, job: MailJob, due_ms: int, caps: Caps) -> str: ...
    async def claim(self, now_ms: int, lease_ms: int, count: int) -> list[MailJob]: ...
    async def done(self, job: MailJob) -> None: ...
    async def retry(self, job: MailJob, due_ms: int) -> None: ...
    async def dead(self, job: MailJob) -> None: ...
    async def unsubscribe(self, site: str, address: str) -> None: ...
    async def unsubscribed(self, site: str, address: str) -> bool: ...
    async def pending(self) -> list[MailJob]: ...
    async def dead_letters(self, count: int) -> list[MailJob]: ...


# KEYS: due, jobs, unsub, day counter, week counter
# ARGV: job id, job JSON, due ms, "<site> <address>", day cap, week cap, day ttl s, week ttl s
# Returns "" (queued), "dup" (that job is already queued), or the code that stopped it.
PUT = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 'dup' end
if redis.call('SISMEMBER', KEYS[3], ARGV[4]) == 1 then return 'unsubscribed' end
local day_cap, week_cap = tonumber(ARGV[5]), tonumber(ARGV[6])
if day_cap > 0 and tonumber(redis.call('GET', KEYS[4]) or '0') >= day_cap then
  return 'email_cap_day'
end
if week_cap > 0 and tonumber(redis.call('GET', KEYS[5]) or '0') >= week_cap then
  return 'email_cap_week'
end
redis.call('INCR', KEYS[4]); redis.call('EXPIRE', KEYS[4], ARGV[7])
redis.call('INCR', KEYS[5]); redis.call('EXPIRE', KEYS[5], ARGV[8])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return ''
"""

# KEYS: due, jobs. ARGV: now ms, lease end ms, count. Returns the claimed jobs' JSON.
CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local job = redis.call('HGET', KEYS[2], id)
  if job then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out + 1] = job
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""

# KEYS: due, jobs, dead. ARGV: job id, job JSON ("" when done), dead max.
FINISH = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if ARGV[2] ~= '' then
  redis.call('LPUSH', KEYS[3], ARGV[2])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[3]) - 1)
end
return 1
"""

# KEYS: due, jobs. ARGV: job id, job JSON, due ms. Only a job still queued is put back.
RETRY = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""


def unsub_member(site: str, address: str) -> str:
    return f"{site} {address.strip().lower()}"


class MailQueue:
    """:class:`SendQueue` on the store's Redis client."""

    def __init__(self, client: Client, keys: Keys) -> None:
        self._r = client
        tag = f"{{{keys.prefix}:mail}}"
        self._due, self._jobs, self._dead, self._unsub = (
            f"{tag}:{part}" for part in ("due", "jobs", "dead", "unsub")
        )
        self._cap = f"{tag}:cap"
        self._put = client.register_script(PUT)
        self._claim = client.register_script(CLAIM)
        self._finish = client.register_script(FINISH)
        self._retry = client.register_script(RETRY)

    async def put(self, job: MailJob, due_ms: int, caps: Caps) -> str:
        """Queue ``job`` for ``due_ms`` unless its address unsubscribed or a cap is reached:
        "" when queued, else the code that stopped it (or "dup")."""
        day, week = job.queued_ms // DAY_MS, job.queued_ms // WEEK_MS
        counter = f"{self._cap}:{job.site}:{job.visitor}"
        keys = [self._due, self._jobs, self._unsub, f"{counter}:d{day}", f"{counter}:w{week}"]
        args: list[str | int] = [
            job.id,
            msgspec.json.encode(job).decode(),
            due_ms,
            unsub_member(job.site, job.to),
            caps.per_day,
            caps.per_week,
            2 * DAY_MS // 1000,
            2 * WEEK_MS // 1000,
        ]
        async with guard("queue an email"):
            return str(await self._put(keys=keys, args=args))

    async def claim(self, now_ms: int, lease_ms: int, count: int) -> list[MailJob]:
        """Up to ``count`` due jobs, leased until ``now_ms + lease_ms``."""
        async with guard("claim emails"):
            raw = await self._claim(
                keys=[self._due, self._jobs], args=[now_ms, now_ms + lease_ms, count]
            )
        return [msgspec.json.decode(r, type=MailJob) for r in raw]

    async def done(self, job: MailJob) -> None:
        async with guard("finish an email"):
            await self._finish(
                keys=[self._due, self._jobs, self._dead], args=[job.id, "", DEAD_MAX]
            )

    async def dead(self, job: MailJob) -> None:
        body = msgspec.json.encode(job).decode()
        async with guard("dead-letter an email"):
            await self._finish(
                keys=[self._due, self._jobs, self._dead], args=[job.id, body, DEAD_MAX]
            )

    async def retry(self, job: MailJob, due_ms: int) -> None:
        body = msgspec.json.encode(job).decode()
        async with guard("reschedule an email"):
            await self._retry(keys=[self._due, self._jobs], args=[job.id, body, due_ms])

    async def unsubscribe(self, site: str, address: str) -> None:
        async with guard("unsubscribe"):
            await self._r.sadd(self._unsub, unsub_member(site, address))

    async def unsubscribed(self, site: str, address: str) -> bool:
        async with guard("read unsubscribes"):
            return bool(await self._r.sismember(self._unsub, unsub_member(site, address)))

    async def pending(self) -> list[MailJob]:
        """Every job still queued (for the QA view and tests)."""
        async with guard("read the email queue"):
            raw = await self._r.hvals(self._jobs)
        return [msgspec.json.decode(r, type=MailJob) for r in raw]

    async def dead_letters(self, count: int) -> list[MailJob]:
        async with guard("read dead emails"):
            raw = await self._r.lrange(self._dead, 0, count - 1)
        return [msgspec.json.decode(r, type=MailJob) for r in raw]
