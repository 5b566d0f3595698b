"""Stable codes that code branches on; people read the text made from them.

- :class:`Reject`: why an event or a batch was not accepted (acks; docs/protocol.md).
- :class:`Refuse`: why a Socket.IO connect was refused (``err.data.code`` in the browser).
- :class:`Outcome`: what became of one candidate firing (the audit record's ``outcome``).
- :class:`Hold`: why governance held a candidate back, or took a prompt off the screen (the
  audit record's ``code``; govern.lua returns the governance ones).
- :class:`Drop`: why a due deadline was dropped without firing (the audit record's ``code``
  beside ``outcome: dropped``).
- :class:`Mail`: what became of one email (the audit record's ``code`` beside ``outcome``
  ``sent``, ``failed``, ``suppressed`` or ``queued``; mail/).
- :class:`Skip`: why a Segment-format message was accepted but not applied (segment_api.py).
- :class:`Gap`: why the export (export/) skipped stream entries it never loaded (docs/export.md).
- :class:`Missed`: why a firing the current rules expect in a recorded session is not in the
  audit stream (``cuewire audit --missed``, missed.py).
- :class:`Misconfig`: why the server refuses to start as configured (``ConfigError.code``).
- :class:`QaRefusal`: why a QA tool (search, reset, force, the QA overlay's explain) refused
  a request (the ``code`` of its JSON error).
- :class:`Undelivered`: why an outbox job (a webhook) was retried or dead-lettered.
- :class:`Restart`: why the server told a tab to start afresh (the ``code`` of its ``reset``
  push, docs/protocol.md).

Add members; never rename or remove one.
"""

from __future__ import annotations

from enum import StrEnum


class Reject(StrEnum):
    """Why an event (or, at index -1, a whole batch) was not accepted."""

    INVALID_EVENT = "invalid_event"  # fails validation; permanent
    EVENT_TOO_LARGE = "event_too_large"  # one event over the size limit; permanent
    BATCH_TOO_LARGE = "batch_too_large"  # more events than one batch may hold; index -1
    INVALID_BATCH = "invalid_batch"  # not a list of maps; index -1
    LIMIT_EXCEEDED = "limit_exceeded"  # a cap on distinct traits / names / props; permanent
    IDENTITY_UNVERIFIED = "identity_unverified"  # identify without a valid signature
    RATE_LIMITED = "rate_limited"  # retryable: resend this event later
    STORE_UNAVAILABLE = "store_unavailable"  # retryable, index -1: resend the batch later
    NOT_CONNECTED = "not_connected"  # index -1: reconnect
    UNKNOWN_VISITOR = "unknown_visitor"  # no visitor id, and no visitor verified as the user
    UNAUTHORIZED = "unauthorized"  # index -1: no or a wrong key (HTTP 401); nothing stored

    @property
    def retryable(self) -> bool:
        return self in RETRYABLE


RETRYABLE = frozenset({Reject.RATE_LIMITED, Reject.STORE_UNAVAILABLE})


class Refuse(StrEnum):
    """Why a Socket.IO connect was refused (the ``code`` of ``connect_error``'s data)."""

    INVALID_AUTH = "invalid_auth"
    UNKNOWN_SITE = "unknown_site"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    DO_NOT_TRACK = "do_not_track"
    STORE_UNAVAILABLE = "store_unavailable"  # retry later (retry_ms, with jitter)
    OVERLOADED = "overloaded"  # retry later (retry_ms, with jitter)

    @property
    def retryable(self) -> bool:
        return self in (Refuse.STORE_UNAVAILABLE, Refuse.OVERLOADED)


class Drop(StrEnum):
    """Why a deadline that fell due did not fire (``outcome: dropped`` in the audit)."""

    NOT_ELIGIBLE = "not_eligible"  # the rule's conditions no longer held at fire time
    SESSION_ENDED = "session_ended"  # the session had ended before the deadline
    NO_TAB = "no_tab"  # a prompt was due but no tab connected in time to show it
    TOO_LATE = "too_late"  # due longer ago than the rule's max_late (e.g. after an outage)
    RULE_REMOVED = "rule_removed"  # the rule is no longer loaded (a reload removed it)


class Outcome(StrEnum):
    """The ``outcome`` of an audit record."""

    FIRED = "fired"  # governance granted it: shown, or its actions ran
    SUPPRESSED = "suppressed"  # governance (or a failed render) stopped it; ``code`` says why
    QUEUED = "queued"  # blocked by a prompt on screen; shown when that one closes
    HOLDOUT = "holdout"  # granted, but the visitor is in the experiment's holdout
    REPLACED = "replaced"  # a prompt on screen, closed for a higher-priority one
    DROPPED = "dropped"  # a due deadline that did not fire; ``code`` is a Drop
    SENT = "sent"  # an email the SMTP server accepted; ``code`` is Mail.SENT
    FAILED = "failed"  # an email that will not be sent; ``code`` is a Mail
    FORCED = "forced"  # shown or run because QA forced it (admin/qatools.py): not an exposure
    # a rule in `mode: shadow` (docs/rules.md): governance would have granted it; nothing ran
    SHADOW_FIRED = "shadow_fired"
    SHADOW_SUPPRESSED = "shadow_suppressed"  # shadow: governance would have held it (``code``)
    EXCLUDED = "excluded"  # the rule is not live for this visitor: ``code`` not_in_rollout


class Hold(StrEnum):
    """The ``code`` of an audit record that is not ``fired``."""

    OPTED_OUT = "opted_out"  # "don't show this again" for this rule
    SNOOZED = "snoozed"  # "remind me later", within the policy's snooze
    DISMISS_PAUSE = "dismiss_pause"  # paused after the policy's count of dismissals
    COOLDOWN = "cooldown"  # the rule's cooldown since it last fired
    CAP_SESSION = "cap_session"  # the rule's per-session cap
    CAP_DAY = "cap_day"  # the rule's per-visitor-day cap
    CAP_WEEK = "cap_week"  # the rule's per-visitor-week cap
    CAP_SITE = "cap_site"  # the policy's prompts per session
    SHOWING = "showing"  # another prompt of equal or higher priority is on screen
    LOWER_PRIORITY = "lower_priority"  # a higher-priority rule fired in the same batch
    RENDER_FAILED = "render_failed"  # the template raised (logged with the traceback)
    HIGHER_PRIORITY = "higher_priority"  # (replaced) a higher-priority prompt took its place
    NOT_IN_ROLLOUT = "not_in_rollout"  # (excluded) the visitor is outside the rule's rollout


# Codes that mean "another prompt is in the way": a rule with ``on_conflict: queue`` waits.
CONFLICTS = frozenset({Hold.SHOWING, Hold.LOWER_PRIORITY})


class Mail(StrEnum):
    """The ``code`` of an email's audit records (rule action ``email``, mail/)."""

    SENT = "email_sent"  # (sent) the SMTP server accepted it
    NO_ADDRESS = "no_address"  # (suppressed) no verified email address for the visitor
    UNSUBSCRIBED = "unsubscribed"  # (suppressed) the address unsubscribed (link or one-click)
    CAP_DAY = "email_cap_day"  # (suppressed) the policy's emails per visitor per UTC day
    CAP_WEEK = "email_cap_week"  # (suppressed) the policy's emails per visitor per week
    NOT_CONFIGURED = "smtp_not_configured"  # (suppressed) no CUEWIRE_SMTP_URL
    QUIET_HOURS = "quiet_hours"  # (queued) waits for the end of the visitor's quiet hours
    REFUSED = "smtp_refused"  # (failed) a permanent (5xx) answer: not retried
    GAVE_UP = "smtp_gave_up"  # (failed) temporary failures on every attempt: dead-lettered


class Skip(StrEnum):
    """Why a message of the Segment-compatible API was accepted (``success``) but changed
    nothing: answered in ``skipped`` with its index, so a sender never retries it."""

    DUPLICATE = "duplicate"  # its messageId was applied before, within the dedupe window
    NOT_MAPPED = "not_mapped"  # screen, group, alias: no Cuewire event stands for it


class Gap(StrEnum):
    """Why export entries were lost to the warehouse (the ``code`` of a gap, docs/export.md)."""

    TRIMMED = "trimmed"  # the capped stream dropped entries before the consumer group read them
    PENDING_TRIMMED = "pending_trimmed"  # read but not acknowledged, then trimmed (maybe loaded)
    UNREADABLE = "unreadable"  # an entry that is not what its stream holds (logged, skipped)


class Missed(StrEnum):
    """Why the audit stream lacks a firing the current rules expect (missed.py): what the
    recorded audit shows for that session and rule, nothing guessed beyond it."""

    RULE_NOT_IN_AUDIT = "rule_not_in_audit"  # no record of the rule in the whole recording:
    # added (or renamed) since, or never a candidate under the rules that ran
    RULE_CHANGED = "rule_changed"  # the live records of the rule carry another rule digest
    SUPPRESSED = "suppressed"  # live, governance held it in this session (``detail``: code)
    DROPPED = "dropped"  # live, its deadline was dropped (``detail``: a Drop, e.g. no_tab)
    QUEUED = "queued"  # live, it waited for the prompt on screen and never showed
    EXCLUDED = "excluded"  # live, the visitor was outside the rule's rollout
    SHADOW = "shadow"  # live, the rule ran in shadow mode (audited, never shown)
    NO_RECORD = "no_record"  # the rule ran live but left no record in this session


class Misconfig(StrEnum):
    """Why the server refuses to start as configured (``ConfigError.code``, printed by the CLI)."""

    WORKERS_NEED_REDIS = "workers_need_redis"  # --workers N > 1 on the in-process embedded store
    EXPORT_UNREACHABLE = "export_unreachable"  # no connection to (or no reading of) the export DSN
    EXPORT_MISSING = "export_missing"  # the export DSN's database has no export tables yet


class QaRefusal(StrEnum):
    """Why a QA tool refused a request (the ``code`` of its JSON error, docs/qa.md)."""

    BAD_REQUEST = "bad_request"  # a parameter is missing or malformed (``field`` names it)
    CSRF = "csrf"  # a POST without the page's token header, or from another origin
    INVALID_TOKEN = "invalid_token"  # a QA overlay token that is tampered, for another site
    TOKEN_EXPIRED = "token_expired"  # a QA overlay token past its expiry: open /qa again
    UNKNOWN_SITE = "unknown_site"  # not a site of this server
    UNKNOWN_SESSION = "unknown_session"  # no such live session (or not this visitor's)
    UNKNOWN_RULE = "unknown_rule"  # no loaded rule with this id
    NO_TAB = "no_tab"  # a forced prompt needs a connected tab of the session


class SearchGap(StrEnum):
    """Why a source of the QA search was not read (its ``code`` in the answer's
    ``covered.sources``, docs/qa.md)."""

    EXPORT_UNAVAILABLE = "export_unavailable"  # the export's PostgreSQL failed or timed out


class Undelivered(StrEnum):
    """Why an outbox job (outbox.py: a webhook, an email) was not done on one attempt: the
    ``code`` of a retry and of a dead letter."""

    TIMEOUT = "timeout"  # the receiver did not answer in time; retried
    UNREACHABLE = "unreachable"  # no connection (refused, DNS, reset); retried
    SERVER_ERROR = "server_error"  # a 5xx answer; retried
    THROTTLED = "throttled"  # a 429 answer; retried after its Retry-After
    REFUSED = "refused"  # another 4xx (or a 3xx) answer: the receiver will not take it
    HANDLER_FAILED = "handler_failed"  # the channel's own code raised; retried
    MALFORMED = "malformed"  # an outbox entry that is not a job (not written by Outbox.put)


class Restart(StrEnum):
    """Why the server told a tab to drop its session and reconnect (the ``reset`` push)."""

    VISITOR_RESET = "visitor_reset"  # the QA view forgot the visitor (store/forget.py)
