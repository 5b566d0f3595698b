"""Sending one message over SMTP (aiosmtplib), and what its failure means: a permanent
refusal (5xx, not retried) or a temporary one (4xx, a refused connection, a timeout)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from enum import StrEnum
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from ..codes import Undelivered
from ..errors import ConfigError

log = logging.getLogger(__name__)

TIMEOUT_S = 15.0


class Sent(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # temporary: try again later
    REFUSED = "refused"  # permanent: never retried


@dataclass(frozen=True)
class SmtpTarget:
    """Where mail goes: ``smtp://[user:password@]host[:port][?starttls=false]`` (STARTTLS
    when the server offers it, unless turned off) or ``smtps://...`` (TLS from the start)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    start_tls: bool | None = None  # None: when the server offers it

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError(
                f"CUEWIRE_SMTP_URL={url!r}: give smtp://HOST:PORT or smtps://HOST:PORT "
                "(user:password@ before the host when the server asks for a login)"
            )
        tls = parts.scheme == "smtps"
        starttls = parse_qs(parts.query).get("starttls", [""])[0].lower()
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if tls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=tls,
            start_tls=False if starttls in ("0", "false", "no", "off") else None,
        )


@dataclass(frozen=True)
class Result:
    sent: Sent
    code: str = ""  # why not (codes.Undelivered): unreachable, timeout, server_error, refused
    detail: str = ""  # the server's (or the network's) words, for people


def _failed(exc: aiosmtplib.SMTPException) -> Result:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        permanent = all(r.code >= 500 for r in exc.recipients)
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        permanent = exc.code >= 500
    else:
        permanent = False
    if permanent:
        return Result(Sent.REFUSED, Undelivered.REFUSED, str(exc))
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return Result(Sent.RETRY, Undelivered.TIMEOUT, str(exc))
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        return Result(Sent.RETRY, Undelivered.UNREACHABLE, str(exc))
    return Result(Sent.RETRY, Undelivered.SERVER_ERROR, str(exc))


async def send(target: SmtpTarget, message: EmailMessage, timeout_s: float = TIMEOUT_S) -> Result:
    """Send ``message``: sent, to retry (a 4xx answer, no connection, a timeout) or refused
    for good (5xx)."""
    try:
        await aiosmtplib.send(
            message,
            hostname=target.host,
            port=target.port,
            username=target.username,
            password=target.password,
            use_tls=target.use_tls,
            start_tls=target.start_tls,
            timeout=timeout_s,
        )
    except aiosmtplib.SMTPException as exc:
        return _failed(exc)
    except OSError as exc:
        return Result(Sent.RETRY, Undelivered.UNREACHABLE, str(exc) or type(exc).__name__)
    return Result(Sent.SENT)
