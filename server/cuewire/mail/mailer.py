"""The rule action ``email``: queue a rendered email for an identified visitor, then send the
queue over SMTP; every step audited with a :class:`codes.Mail` code.

Queueing (:meth:`Mailer.queue`, called by delivery.py when governance grants the rule):
the address, the render, quiet hours, then the queue's own atomic checks (queued before,
unsubscribed, the policy's caps) as it goes on the ``email`` outbox (queue.py). Sending
(:meth:`Mailer.run`, a supervised loop): release held emails now due, take the outbox's jobs
(under its lease), skip an address that unsubscribed meanwhile, send, and answer the outbox:
done, retry (its backoff with jitter) or dead-letter.

Which address: the ``email`` trait of the visitor's last *verified* identify (a signed
identify, or one from the site's backend; identity.py), kept as the visitor field
``mail_to``. With ``mail_unverified`` on (the demo and its local sink only), the ``email``
trait of an unsigned identify too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import jinja2
import msgspec

from .. import fields
from ..audit import AuditRecord
from ..clock import Clock
from ..codes import Hold, Mail, Outcome
from ..ids import new_id
from ..lifecycle import Closing
from ..origin import Origin
from ..outbox import Dead, Done, Job, Retry, Verdict
from ..rules.facts_view import FactView
from ..rules.model import EmailPolicy, Rule
from ..settings import Settings
from ..waiting import wait_set
from . import smtp
from .message import build, valid_address
from .queue import Caps, MailJob, MailQueue
from .templates import EmailCatalog
from .timing import quiet_until
from .tokens import make_token, unsubscribe_key

log = logging.getLogger(__name__)

UNSUBSCRIBE_PATH = "/email/unsubscribe"
REASONS: dict[str, str] = {
    Mail.SENT: "sent",
    Mail.NO_ADDRESS: "no verified email address",
    Mail.UNSUBSCRIBED: "unsubscribed",
    Mail.CAP_DAY: "email cap per day",
    Mail.CAP_WEEK: "email cap per week",
    Mail.NOT_CONFIGURED: "no SMTP server configured",
    Mail.QUIET_HOURS: "quiet hours in the visitor's time zone",
    Mail.REFUSED: "refused by the SMTP server",
    Mail.GAVE_UP: "gave up after failed attempts",
    Hold.RENDER_FAILED: "render failed",
}


class Mailer(Closing):
    def __init__(
        self,
        catalog: Callable[[], EmailCatalog],
        settings: Settings,
        clock: Clock,
        audit: Callable[[str, dict[str, str]], Any],
    ) -> None:
        self._queue: MailQueue | None = None  # use(): once the store is open
        self._catalog = catalog
        self._clock = clock
        self._audit = audit
        self._from = settings.mail_from
        self._unverified = settings.mail_unverified
        self._poll_s = settings.mail_poll_s
        self.target = smtp.SmtpTarget.from_url(settings.smtp_url) if settings.smtp_url else None
        base = settings.public_url or f"http://{settings.host}:{settings.port}"
        self.unsubscribe_base = base.rstrip("/") + UNSUBSCRIBE_PATH
        self.key = unsubscribe_key(settings.secret)
        if settings.secret is None and self.target is not None:
            log.warning(
                "CUEWIRE_SECRET is not set: the unsubscribe links of emails sent now stop "
                "working when this process restarts (docs/deploy.md)"
            )
        self._stopping = asyncio.Event()

    def use(self, queue: MailQueue) -> None:
        """Queue on ``queue`` (made once the store is open: on a cluster its client is the
        cluster's only then)."""
        self._queue = queue

    @property
    def send_queue(self) -> MailQueue:
        if self._queue is None:
            raise RuntimeError("Mailer.use(queue) first: the mailer has no queue yet")
        return self._queue

    def address(self, visitor: dict[str, str]) -> str | None:
        """Where the visitor's email goes (see the module's docstring), or None."""
        address = valid_address(visitor.get(fields.MAIL_TO))
        if address is None and self._unverified:
            raw = visitor.get(fields.trait("email"))
            address = valid_address(json.loads(raw)) if raw else None
        return address

    async def queue(
        self,
        origin: Origin,
        rule: Rule,
        cause: str,
        view: FactView,
        policy: EmailPolicy,
        firing: str,
    ) -> list[dict[str, str]]:
        """Queue ``rule``'s email for the visitor of ``view`` (its whole facts); the audit
        records of what stopped or held it (none when it simply went on the queue)."""
        action = rule.email
        if action is None:
            return []
        now = self._clock.now_ms()
        job_id = f"m_{firing}" if firing else new_id("m_")

        def record(outcome: Outcome, code: str) -> list[dict[str, str]]:
            fields_ = AuditRecord(
                outcome,
                rule.id,
                origin.session,
                origin.visitor,
                cause,
                now,
                code=code,
                reason=REASONS[code],
                prompt=job_id,
                template=action.template,
                url=view.url,
                firing=f"{job_id}:{code}",
            ).fields()
            return [fields_]

        to = self.address(view.visitor)
        if to is None:
            return record(Outcome.SUPPRESSED, Mail.NO_ADDRESS)
        if self.target is None:
            return record(Outcome.SUPPRESSED, Mail.NOT_CONFIGURED)
        unsubscribe_url = f"{self.unsubscribe_base}?t={make_token(self.key, origin.site, to)}"
        context = view.template_context()
        context["params"] = dict(action.params)
        context["email"] = {
            "id": job_id,
            "rule": rule.id,
            "to": to,
            "unsubscribe_url": unsubscribe_url,
        }
        try:
            rendered = self._catalog().get(action.template).render(context)
        except (KeyError, jinja2.TemplateError):
            log.exception("rule %s: cannot render email template %s", rule.id, action.template)
            return record(Outcome.SUPPRESSED, Hold.RENDER_FAILED)
        job = MailJob(
            id=job_id,
            site=origin.site,
            session=origin.session,
            visitor=origin.visitor,
            rule=rule.id,
            template=action.template,
            to=to,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            unsubscribe_url=unsubscribe_url,
            queued_ms=now,
            url=view.url,
        )
        tz = view.session.get("tz")
        quiet = quiet_until(now, int(tz) if tz else None, policy.quiet_hours)
        caps = Caps(policy.per_visitor_day, policy.per_visitor_week)
        code = await self.send_queue.put(job, quiet or now, now, caps)
        if code == "dup":
            return []
        if code:
            return record(Outcome.SUPPRESSED, Mail(code))
        if quiet:
            return record(Outcome.QUEUED, Mail.QUIET_HOURS)
        return []

    # ------------------------------------------------------------------ sending

    async def run(self) -> None:
        """Send what is due until :meth:`stop`; supervised by the app (a store failure
        raises: the supervisor restarts the loop after a backoff)."""
        self._stopping.clear()
        while not self._stopping.is_set():
            if await self.tick() == 0:
                await wait_set(self._stopping, self._poll_s)

    def stop(self) -> None:
        self._stopping.set()

    async def tick(self) -> int:
        """Release held emails now due, then send one turn of the outbox's jobs; how many
        jobs were taken."""
        queue = self.send_queue
        await queue.release(self._clock.now_ms())
        if self.target is None:
            return 0
        jobs = await queue.outbox.take()
        await queue.outbox.do_all(jobs, self.handle)  # a slow SMTP server keeps its leases
        return len(jobs)

    async def handle(self, job: Job) -> Verdict:
        """Send one outbox job (the outbox settles the verdict); audit how it ended."""
        mail = msgspec.convert(job.data, MailJob)
        queue = self.send_queue
        if self.target is None:
            return Retry(Mail.NOT_CONFIGURED)
        if await queue.unsubscribed(mail.site, mail.to):
            await self._finished(mail, Outcome.SUPPRESSED, Mail.UNSUBSCRIBED)
            return Done()
        result = await smtp.send(self.target, build(mail, self._from))
        if result.sent is smtp.Sent.SENT:
            await self._finished(mail, Outcome.SENT, Mail.SENT)
            return Done()
        last = job.attempts + 1 >= queue.outbox.max_attempts
        if result.sent is smtp.Sent.REFUSED or last:
            log.warning("email %s to %s failed for good: %s", mail.id, mail.to, result.detail)
            code = Mail.REFUSED if result.sent is smtp.Sent.REFUSED else Mail.GAVE_UP
            await self._finished(mail, Outcome.FAILED, code, result.detail)
            return Dead(code, result.detail)
        log.info("email %s: attempt %d failed (%s)", mail.id, job.attempts + 1, result.detail)
        return Retry(result.code, detail=result.detail)

    async def _finished(self, job: MailJob, outcome: Outcome, code: Mail, detail: str = "") -> None:
        now = self._clock.now_ms()
        reason = REASONS[code] + (f": {detail}" if detail else "")
        record = AuditRecord(
            outcome,
            job.rule,
            job.session,
            job.visitor,
            "email",
            now,
            code=str(code),
            reason=reason,
            prompt=job.id,
            template=job.template,
            url=job.url,
            latency_ms=now - job.queued_ms,
            firing=f"{job.id}:{code}",
        )
        await self._audit(job.site, record.fields())

    async def aclose(self) -> None:
        self.stop()
