"""Typed settings. Read the environment only in :meth:`Settings.from_env` (the CLI calls it)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

ENV_PREFIX = "CUEWIRE_"


@dataclass(frozen=True)
class Limits:
    """What clients may send and store (docs/protocol.md, "Limits").

    Each is set from the environment as ``CUEWIRE_LIMITS_<NAME>``, e.g.
    ``CUEWIRE_LIMITS_MAX_PAYLOAD_BYTES=131072``.
    """

    max_payload_bytes: int = 64 * 1024  # one websocket message, one HTTP body
    max_batch_events: int = 100
    max_event_bytes: int = 16 * 1024  # one event, JSON-encoded
    # Rate limits, held in the store so a reconnect does not refill them; 0 turns one off.
    events_per_second: float = 50.0  # per visitor
    event_burst: int = 200
    address_events_per_second: float = 1000.0  # per client address (many visitors behind NAT)
    address_event_burst: int = 4000
    # Caps on distinct names, so one visitor cannot grow the store without bound; 0: no cap.
    max_traits: int = 100  # distinct identify traits per visitor
    max_event_names: int = 100  # distinct custom event names per session, and per visitor
    max_prop_values: int = 1000  # distinct prop values counted for rules, per session
    # Admission of connects: store calls in flight, and connects waiting for one.
    connect_concurrency: int = 32
    connect_queue: int = 512
    connect_retry_ms: int = 2000  # the shortest retry_ms of a refused connect (admission.py)


@dataclass(frozen=True)
class Settings:
    """Everything the app factory needs; pass it in, never read it from globals."""

    redis_url: str | None = None
    rules_dir: Path = Path("rules")
    templates_dir: Path = Path("templates")
    sites_file: Path | None = None
    demo_site_dir: Path | None = None
    # learned models (docs/learning.md); None: <rules_dir>/models/<name>.json when it exists
    segments_model: Path | None = None
    propensity_model: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8377
    session_ttl_s: int = 30 * 60
    visitor_ttl_s: int = 400 * 24 * 3600
    recent_events: int = 50
    live_stream_max: int = 10_000  # accepted batches kept for the QA view; 0 turns it off
    timer_poll_s: float = 0.05
    timer_lease_s: float = 30.0  # a claimed deadline is claimed again when not acked by then
    # an outbox job (outbox.py: webhooks) held this long by a process that did not settle it
    # (it died) is taken over by another; longer than one attempt (webhooks: 5 s timeout)
    outbox_lease_s: float = 30.0
    outbox_poll_s: float = 0.2  # how often an idle outbox loop looks for due jobs
    outbox_backoff_s: float = 1.0  # the first retry's longest pause; it doubles each attempt
    reload_poll_s: float = 1.0
    # on a Redis Cluster: how often each process shares its per-address rate limit counts
    # (store/addresses.py); processes may together pass that limit by what they admit in
    # about two of these (docs/deploy.md, "Redis Cluster"); 0: each batch asks the shared
    # count first (exact, one more round trip per batch)
    address_sync_s: float = 0.1
    limits: Limits = field(default_factory=Limits)
    key_prefix: str = "cw"
    admin_user: str = "admin"
    admin_password: str | None = None  # no admin views without one
    # signs admin tokens; None: a random key per process (tokens die with it, docs/deploy.md)
    secret: str | None = None
    # Email (rule action `email`, docs/integrations.md "Email"): smtp://HOST:PORT or smtps://;
    # none: emails are audited as smtp_not_configured and not sent
    smtp_url: str | None = None
    mail_from: str = "Cuewire <cuewire@localhost>"
    # where the server is reached from outside: the base of unsubscribe links
    public_url: str | None = None
    # send to the email trait of an unsigned identify too (the demo's local sink only)
    mail_unverified: bool = False
    mail_poll_s: float = 1.0  # how often the sender looks for due emails
    mail_retry_s: float = 30.0  # the pause after a first failed attempt (then doubling)
    demo_mail_sink: bool = False  # `cuewire demo`: receive the emails on a local SMTP sink
    # with it, `cuewire serve` exports events and decisions to PostgreSQL (docs/export.md)
    export_dsn: str | None = None
    # which worker of `cuewire serve --workers N` this process is (its /healthz says so); 0 alone
    worker: int = 0

    @classmethod
    def from_env(
        cls, overrides: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from ``CUEWIRE_*`` variables, then apply explicit overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or f.name == "limits":
                continue
            values[f.name] = _coerce(f.name, raw, getattr(cls(), f.name))
        values["limits"] = _limits_from_env(env)
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return replace(cls(), **values)


def _limits_from_env(env: Mapping[str, str]) -> Limits:
    """``CUEWIRE_LIMITS_<FIELD>`` for each field of :class:`Limits`."""
    default = Limits()
    values: dict[str, Any] = {}
    for f in fields(Limits):
        name = f"limits_{f.name}"
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is None:
            continue
        value = _coerce(name, raw, getattr(default, f.name))
        if value < 0:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} must not be negative")
        values[f.name] = value
    return replace(default, **values)


def _coerce(name: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            return raw.lower() in {"1", "true", "yes", "on"}
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path) or name.endswith(("_dir", "_file", "_model")):
            return Path(raw)
    except ValueError as exc:
        message = f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid value: {exc}"
        raise ConfigError(message) from exc
    return raw
