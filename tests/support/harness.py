"""The engine, store, timers and delivery wired together without a transport, on a clock
the test controls: minutes pass in microseconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cuewire.app import mail_queue
from cuewire.delivery import Delivery
from cuewire.mail.mailer import Mailer
from cuewire.mail.queue import CHANNEL as EMAIL
from cuewire.origin import Origin
from cuewire.outbox import Outbox
from cuewire.pipeline import Pipeline
from cuewire.protocol import Prompt
from cuewire.runtime import Runtime
from cuewire.settings import Settings
from cuewire.store import RedisStore
from cuewire.timers import TimerLoop

T0 = 1_764_000_000_000  # a fixed "now", epoch ms


@dataclass
class FakeClock:
    now: int = T0

    def now_ms(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1000)


@dataclass
class Harness:
    store: RedisStore
    settings: Settings
    clock: FakeClock = field(default_factory=FakeClock)
    shown: list[tuple[str, Prompt]] = field(default_factory=list)
    seq: int = 0
    loaded: Runtime | None = None  # the settings' rules and templates, when already loaded

    def __post_init__(self) -> None:
        # loading the shipped templates takes a fifth of a second: a test that builds many
        # harnesses on the same files (a hypothesis example each) loads them once
        self.runtime = self.loaded or Runtime(self.settings.rules_dir, self.settings.templates_dir)
        self.mailer = Mailer(self.runtime.emails, self.settings, self.clock, self.store.audit)
        outbox = Outbox(self.store.client, self.store.keys, EMAIL, poll_s=0.01)
        self.mailer.use(mail_queue(outbox, self.store, self.settings))
        self.delivery = Delivery(
            self.store,
            self.runtime.engine,
            self.runtime.catalog,
            self._emit,
            self.clock,
            mail=self.mailer,
        )
        self.pipeline = Pipeline(self.store, self.runtime.engine, self.delivery)
        self.timers = TimerLoop(self.store, self.runtime.engine, self.delivery, self.clock, 0.01)

    async def _emit(self, sid: str, prompt: Prompt, confirm: bool) -> bool:
        self.shown.append((sid, prompt))
        return True

    async def visit(
        self, visitor: str = "v_harness01", session: str | None = None, site: str = "test-site"
    ) -> VisitorSession:
        opened = await self.store.open_session(site, visitor, session, self.clock.now_ms())
        return VisitorSession(self, Origin(site, visitor, opened.session, "tab1", "sid-" + visitor))

    async def pass_time(self, seconds: float) -> None:
        """Advance the clock, stopping at every deadline on the way to fire it on time."""
        end = self.clock.now + round(seconds * 1000)
        while True:
            due = await self.store.next_due_ms()
            if due is None or due > end:
                break
            self.clock.now = max(self.clock.now, due)
            await self.timers.tick()
        self.clock.now = end
        await self.timers.tick()

    async def audit(self, site: str = "test-site") -> list[dict[str, str]]:
        return await self.store.read_audit(site, 1000)

    @property
    def rules_shown(self) -> list[str]:
        return [p.rule for _, p in self.shown]


ATTENTION_BEAT_MS = 5000  # client-js/src/attention.ts


@dataclass
class VisitorSession:
    harness: Harness
    origin: Origin

    async def send(self, type: str, url: str = "http://shop.test/", **fields: Any) -> None:
        h = self.harness
        event = {"type": type, "ts": h.clock.now, "seq": h.seq, "url": url, **fields}
        h.seq += 1
        await h.pipeline.process(self.origin, [event], h.clock.now_ms())

    async def attend(self, url: str, seconds: float, active_ms: int = 0) -> int:
        """The visitor keeps reading ``url`` for ``seconds``: the snippet's ``attention`` beat
        every 5 s, its ``active_ms`` growing from ``active_ms``; returns the last one."""
        beats, rest = divmod(round(seconds * 1000), ATTENTION_BEAT_MS)
        for _ in range(beats):
            await self.harness.pass_time(ATTENTION_BEAT_MS / 1000)
            active_ms += ATTENTION_BEAT_MS
            await self.send("attention", url, active_ms=active_ms, reading=True)
        await self.harness.pass_time(rest / 1000)
        return active_ms


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
