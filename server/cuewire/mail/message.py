"""One email as the SMTP server gets it: text and HTML parts, and the headers that let the
recipient's mail client unsubscribe in one click (RFC 2369, RFC 8058)."""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from .queue import MailJob

# An address we send to: one mailbox, no display name, no line breaks, no list separators.
ADDRESS = re.compile(r"^[^@\s<>(),;:\"\[\]\\]{1,64}@[A-Za-z0-9.-]{1,252}\.[A-Za-z0-9-]{2,63}$")


def valid_address(value: object) -> str | None:
    """``value`` when it is one plain email address (a trait from outside), else None."""
    if not isinstance(value, str) or len(value) > 254 or not ADDRESS.match(value):
        return None
    return value


def build(job: MailJob, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = job.to
    message["Subject"] = job.subject
    domain = parseaddr(sender)[1].rpartition("@")[2] or "cuewire.invalid"
    message["Message-ID"] = f"<{job.id}@{domain}>"
    message["Date"] = formatdate(job.queued_ms / 1000, usegmt=True)
    message["List-Unsubscribe"] = f"<{job.unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(job.text)
    message.add_alternative(job.html, subtype="html")
    return message
