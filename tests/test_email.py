"""Email for identified visitors: the rule action ``email`` renders an email template, queues it
in the store and sends it over SMTP; every step is audited. The SMTP server is a real one on
loopback (aiosmtpd: the demo's own mailbox, cuewire/demo_mail.py), and every test reads what
it received."""

from __future__ import annotations

import html
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette

from cuewire.demo_mail import MailSink, Received
from cuewire.experiments import HOLDOUT, variant_for
from cuewire.mail.queue import CHANNEL as EMAIL
from cuewire.mail.queue import MailQueue
from cuewire.mail.smtp import SmtpTarget
from cuewire.mail.unsubscribe import unsubscribe_routes
from cuewire.origin import Origin
from cuewire.outbox import Outbox
from cuewire.settings import Settings
from cuewire.store import RedisStore
from support.harness import Harness, VisitorSession, write
from support.paths import FIXTURES, ROOT
from support.servers import WITH_CLUSTER, LiveServer, free_port, site_for
from support.vectors import XSS_VECTORS
from support.waiting import eventually

BACKENDS = WITH_CLUSTER  # every key of the email channel shares one hash tag

CHECKOUT = "http://shop.test/checkout.html"
RULES = """
rules:
  - id: reminder
    trigger: {event: {type: custom, name: checkout_started}}
    email:
      template: cart_reminder
      params: {subject: "Your cart at the test shop", href: /cart.html, shop: "Test shop"}
    limit: {per_session: 0}
policy:
  email:
    per_visitor_day: 2
    per_visitor_week: 5
    quiet_hours: {start: "21:00", end: "08:00"}
"""


@pytest.fixture
async def sink() -> AsyncIterator[MailSink]:
    async with MailSink() as running:
        yield running


def mail_settings(settings: Settings, folder: Path, port: int) -> Settings:
    """The test's settings with the email rule above, the shipped email templates, and SMTP
    at ``port`` on loopback."""
    write(folder / "rules" / "email.yaml", RULES)
    shutil.copytree(ROOT / "templates" / "email", folder / "templates" / "email")
    return replace(
        settings,
        rules_dir=folder / "rules",
        templates_dir=folder / "templates",
        smtp_url=f"smtp://127.0.0.1:{port}",
        public_url="https://cw.shop.test",
        secret="a secret of the test's own",
        mail_poll_s=0.02,
        mail_retry_s=1.0,
    )


@pytest.fixture
def harness(store: RedisStore, settings: Settings, tmp_path: Path, sink: MailSink) -> Harness:
    return Harness(store, mail_settings(settings, tmp_path, sink.port))


async def identified(
    h: Harness, traits: dict[str, Any], verified: bool = True, tz: int = 0, visitor: str = "v_ada"
) -> VisitorSession:
    """A visitor whose browser reported UTC offset ``tz`` and who identified with ``traits``."""
    opened = await h.store.open_session(
        "test-site", visitor, None, h.clock.now_ms(), {"tz": str(tz)}
    )
    v = VisitorSession(h, Origin("test-site", visitor, opened.session, "tab1", "sid-" + visitor))
    await v.send("identify", CHECKOUT, user_id=visitor, traits=traits, verified=verified)
    return v


async def checkout_left(v: VisitorSession) -> None:
    """The visitor opens the checkout: the rule emails them."""
    await v.send("custom", CHECKOUT, name="checkout_started", props={})


async def delivered(h: Harness, sink: MailSink, count: int = 1) -> list[Received]:
    """Send what is due until the sink holds ``count`` messages."""

    async def sent() -> int:
        await h.mailer.tick()
        return len(sink.messages)

    await eventually(sent, lambda n: n >= count, what=f"{count} emails received")
    return list(sink.messages)


async def left(h: Harness) -> int:
    """Emails not sent yet: held, queued on the outbox or waiting for a retry."""
    queue = h.mailer.send_queue
    depth = await queue.outbox.depth()
    return await queue.held() + depth.queued + depth.due


def email_audit(records: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(outcome, code) of the audit records about emails (their ``prompt`` is the email's id)."""
    return [(r["outcome"], r["code"]) for r in records if r["prompt"].startswith("m_")]


class Tags(HTMLParser):
    """Every element and attribute of an HTML document, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.text: list[str] = []
        self.srcdocs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)
        self.srcdocs += [value or "" for name, value in attrs if name == "srcdoc"]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(document: str) -> Tags:
    tags = Tags()
    tags.feed(document)
    return tags


async def test_an_identified_visitor_gets_the_email_with_both_parts_and_inlined_css(
    harness: Harness, sink: MailSink
) -> None:
    v = await identified(harness, {"email": "ada@example.com", "name": "Ada"})
    await checkout_left(v)
    [mail] = await delivered(harness, sink)
    message = mail.message
    assert mail.recipients == ["ada@example.com"]
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Your cart at the test shop"
    assert message["From"] == "Cuewire <cuewire@localhost>"
    unsubscribe = message["List-Unsubscribe"]
    assert unsubscribe.startswith("<https://cw.shop.test/email/unsubscribe?t=")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Message-ID"].startswith("<m_")
    text, body = mail.part("plain"), mail.part("html")
    assert "Hi Ada! The things you picked" in text
    assert "Back to my cart: http://shop.test/cart.html" in text
    assert unsubscribe.strip("<>") in text
    # the CSS is inlined: no <style> left, the rules are on the elements
    assert "<style" not in body
    assert 'class="cta" href="http://shop.test/cart.html" style="display: inline-block;' in body
    assert f'href="{html.escape(unsubscribe.strip("<>"))}"' in body
    assert email_audit(await harness.audit()) == [("sent", "email_sent")]
    assert await left(harness) == 0


async def test_untrusted_traits_come_out_as_inert_text_in_both_parts(
    harness: Harness, sink: MailSink
) -> None:
    for i, vector in enumerate(XSS_VECTORS):
        v = await identified(
            harness, {"email": f"v{i}@example.com", "name": vector}, visitor=f"v_x{i}"
        )
        await checkout_left(v)
    mails = await delivered(harness, sink, len(XSS_VECTORS))
    by_address = {m.recipients[0]: m for m in mails}
    for i, vector in enumerate(XSS_VECTORS):
        mail = by_address[f"v{i}@example.com"]
        body = parsed(mail.part("html"))
        # the only elements and attributes are the template's own: nothing the vector brought
        assert body.tags <= {"html", "head", "meta", "title", "body", "div", "p", "h1", "a"}, vector
        assert body.attributes <= {"lang", "charset", "name", "content", "class", "href", "style"}
        # and the vector reads back as the text it was (template syntax included: not run)
        assert f"Hi {vector}! The things" in "".join(body.text), vector
        assert f"Hi {vector}! The things" in mail.part("plain"), vector


async def test_an_address_from_an_unsigned_identify_gets_nothing(
    harness: Harness, sink: MailSink
) -> None:
    v = await identified(harness, {"email": "mallory@example.com"}, verified=False)
    await checkout_left(v)
    assert email_audit(await harness.audit()) == [("suppressed", "no_address")]
    assert await harness.mailer.tick() == 0
    assert await left(harness) == 0


async def test_the_one_click_unsubscribe_stops_every_later_email(
    harness: Harness, sink: MailSink
) -> None:
    v = await identified(harness, {"email": "ada@example.com"})
    await checkout_left(v)
    [mail] = await delivered(harness, sink)
    link = httpx.URL(mail.message["List-Unsubscribe"].strip("<>"))
    app = Starlette(routes=unsubscribe_routes(harness.mailer))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://cw.shop.test") as client:
        page = await client.get(link.raw_path.decode())  # what a link scanner does
        assert page.status_code == 200 and "Stop emails to <strong>ada@example.com" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert not await harness.mailer.send_queue.unsubscribed("test-site", "ada@example.com")
        forged = str(link.params["t"])[:-2] + "xx"
        refused = await client.post("/email/unsubscribe", params={"t": forged})
        assert refused.status_code == 400
        # RFC 8058: the mail client POSTs this body to the List-Unsubscribe URL
        done = await client.post(
            link.raw_path.decode(),
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert done.status_code == 200
    await checkout_left(v)
    assert email_audit(await harness.audit()) == [
        ("sent", "email_sent"),
        ("suppressed", "unsubscribed"),
    ]
    assert await harness.mailer.tick() == 0 and len(sink.messages) == 1


async def test_an_email_queued_before_the_unsubscribe_is_not_sent(
    harness: Harness, sink: MailSink
) -> None:
    v = await identified(harness, {"email": "ada@example.com"})
    await checkout_left(v)
    await harness.mailer.send_queue.unsubscribe("test-site", "Ada@Example.com")
    assert await harness.mailer.tick() == 1
    assert email_audit(await harness.audit()) == [("suppressed", "unsubscribed")]
    assert len(sink.messages) == 0


async def test_the_policy_caps_emails_per_visitor_per_day(harness: Harness, sink: MailSink) -> None:
    v = await identified(harness, {"email": "ada@example.com"})
    for _ in range(3):
        await checkout_left(v)
    await delivered(harness, sink, 2)
    codes = email_audit(await harness.audit())
    assert codes.count(("sent", "email_sent")) == 2
    assert ("suppressed", "email_cap_day") in codes
    harness.clock.advance(24 * 3600)  # the next day: one more (the week allows 5)
    await checkout_left(v)
    await delivered(harness, sink, 3)


async def test_an_email_due_in_quiet_hours_waits_for_the_visitors_morning(
    harness: Harness, sink: MailSink
) -> None:
    # 16:00 UTC is 23:00 for a visitor 7 hours ahead (getTimezoneOffset() = -420)
    v = await identified(harness, {"email": "ada@example.com"}, tz=-420)
    await checkout_left(v)
    assert email_audit(await harness.audit()) == [("queued", "quiet_hours")]
    assert await harness.mailer.tick() == 0
    harness.clock.advance(8.5 * 3600)  # 07:30 there: still quiet
    assert await harness.mailer.tick() == 0
    harness.clock.advance(0.5 * 3600)  # 08:00 there
    [mail] = await delivered(harness, sink)
    assert mail.recipients == ["ada@example.com"]


async def test_a_failed_send_is_retried_later_and_delivered_once(
    harness: Harness, sink: MailSink
) -> None:
    v = await identified(harness, {"email": "ada@example.com"})
    mailer = harness.mailer
    mailer.target = SmtpTarget("127.0.0.1", free_port())  # nothing listens there
    await checkout_left(v)
    assert await mailer.tick() == 1
    depth = await mailer.send_queue.outbox.depth()
    assert (depth.due, depth.counts) == (1, {"retry": 1})
    mailer.target = SmtpTarget("127.0.0.1", sink.port)  # the server is back
    await delivered(harness, sink)  # after the retry's pause (at most mail_retry_s)
    assert await mailer.tick() == 0
    assert len(sink.messages) == 1
    assert email_audit(await harness.audit()) == [("sent", "email_sent")]
    assert await left(harness) == 0


async def test_an_email_taken_by_a_sender_that_died_is_sent_by_another_once(
    harness: Harness, sink: MailSink
) -> None:
    v = await identified(harness, {"email": "ada@example.com"})
    await checkout_left(v)
    store = harness.store
    died = Outbox(store.client, store.keys, EMAIL, consumer="died-mid-send")
    [taken] = await died.take()  # and it never answers: its process was killed
    assert taken.data["to"] == "ada@example.com"
    survivor = Outbox(store.client, store.keys, EMAIL, consumer="survivor", lease_s=1.0)
    harness.mailer.use(MailQueue(survivor, store.client, store.keys))
    assert await harness.mailer.tick() == 0  # within the lease: still the dead one's
    await delivered(harness, sink)  # after it: taken over and sent
    assert await harness.mailer.tick() == 0 and len(sink.messages) == 1
    assert email_audit(await harness.audit()) == [("sent", "email_sent")]
    assert await left(harness) == 0


async def test_a_rule_that_shows_and_emails_sends_the_email_to_its_holdout_without_a_prompt(
    store: RedisStore, settings: Settings, tmp_path: Path, sink: MailSink
) -> None:
    h = Harness(store, mail_settings(settings, tmp_path, sink.port))
    shutil.copy(FIXTURES / "templates" / "note.html", tmp_path / "templates" / "note.html")
    both = RULES.replace(
        "    limit: {per_session: 0}",
        "    show: {template: note, holdout: 0.5}\n    limit: {per_session: 0}",
    )
    write(tmp_path / "rules" / "email.yaml", both)
    await h.runtime.reload_if_changed()
    rule = h.runtime.engine().rules.rules["reminder"]
    visitor = next(f"v_{i}" for i in range(100) if variant_for(f"v_{i}", rule) == HOLDOUT)
    v = await identified(h, {"email": "ada@example.com"}, visitor=visitor)
    await checkout_left(v)
    await delivered(h, sink)
    assert h.shown == []  # the prompt's holdout sees no prompt
    outcomes = [r["outcome"] for r in await h.audit() if r["rule"] == "reminder"]
    assert sorted(outcomes) == ["holdout", "sent"]


class Refusing(MailSink):
    """An SMTP server that has no such mailbox: 550 for every recipient."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        return "550 5.1.1 No such mailbox"


async def test_a_permanent_refusal_is_not_retried_and_goes_to_the_dead_letters(
    harness: Harness,
) -> None:
    v = await identified(harness, {"email": "nobody@example.com"})
    async with Refusing() as refusing:
        harness.mailer.target = SmtpTarget("127.0.0.1", refusing.port)
        await checkout_left(v)
        assert await harness.mailer.tick() == 1
    assert email_audit(await harness.audit()) == [("failed", "smtp_refused")]
    [dead] = await harness.mailer.send_queue.outbox.dead_letters(10)
    assert (dead.data["to"], dead.code, dead.attempts) == ("nobody@example.com", "smtp_refused", 1)
    assert "550" in dead.detail
    assert await left(harness) == 0


async def test_a_queued_email_survives_a_server_restart_and_is_delivered_once(
    settings: Settings, tmp_path: Path
) -> None:
    """The SMTP server is down while the rule fires: the email waits in Redis. The Cuewire
    server stops, the SMTP server comes up, a new Cuewire server starts: it sends the email,
    once."""
    if settings.redis_url is None:
        pytest.skip("the embedded store lives and dies with its process, by design")
    port = free_port()
    settings = replace(mail_settings(settings, tmp_path, port), mail_retry_s=0.05)

    async def fire(server: LiveServer) -> None:
        store = server.services.store
        now = server.services.clock.now_ms()
        noon = str((now // 60_000) % 1440 - 720)  # a visitor for whom it is noon: not quiet
        opened = await store.open_session("test-site", "v_ada", None, now, {"tz": noon})
        origin = Origin("test-site", "v_ada", opened.session, "tab1", "sid-1@x")
        now = server.services.clock.now_ms()
        identify = {
            "type": "identify",
            "ts": now,
            "seq": 0,
            "url": CHECKOUT,
            "user_id": "ada",
            "traits": {"email": "ada@example.com"},
            "verified": True,
        }
        started = {
            "type": "custom",
            "ts": now,
            "seq": 1,
            "url": CHECKOUT,
            "name": "checkout_started",
            "props": {},
        }
        await server.services.pipeline.process(origin, [identify, started], now)

    async def counts(server: LiveServer) -> dict[str, int]:
        depth = await server.call(server.services.mailer.send_queue.outbox.depth())
        return depth.counts

    with LiveServer(settings, site_for) as first:
        await first.call(fire(first))
        await eventually(lambda: counts(first), lambda c: c.get("retry"), what="a failed attempt")
    async with MailSink(port=port) as sink:
        with LiveServer(settings, site_for) as second:
            await eventually(lambda: counts(second), lambda c: c.get("done"), what="the send")
            audit = await second.call(second.services.store.read_audit("test-site", 50))
            depth = await second.call(second.services.mailer.send_queue.outbox.depth())
    assert len(sink.messages) == 1
    assert (depth.queued, depth.pending, depth.due, depth.dead) == (0, 0, 0, 0)
    assert email_audit(audit) == [("sent", "email_sent")]


async def test_email_templates_that_fail_to_load_say_where(tmp_path: Path) -> None:
    from cuewire.errors import TemplateError
    from cuewire.mail.templates import EmailCatalog

    write(
        tmp_path / "bad.html",
        "{#---\nsubject: Hi\n---#}\n<p>{{ visitor.traits.name.upper() }}</p>\n",
    )
    write(tmp_path / "bad.txt", "{{ params.get('x', '') }}\n")
    with pytest.raises(TemplateError) as raised:
        EmailCatalog.load(tmp_path)
    [problem] = raised.value.problems
    assert (problem.path, problem.line) == (tmp_path / "bad.html", 4)
    assert "rendering the sample data" in problem.message
    write(tmp_path / "bad.txt", "{{ secret }}\n")
    write(tmp_path / "bad.html", "{#---\nsubject: Hi\n---#}\n<p>{{ params.get('x', '') }}</p>\n")
    with pytest.raises(TemplateError) as raised:
        EmailCatalog.load(tmp_path)
    [problem] = raised.value.problems
    assert problem.path == tmp_path / "bad.txt" and "'secret' is undefined" in problem.message


def test_a_rule_sending_an_unknown_email_template_is_reported_where_it_is_named(
    tmp_path: Path,
) -> None:
    from cuewire.errors import RuleError
    from cuewire.runtime import load_sources

    rules = write(tmp_path / "rules" / "r.yaml", RULES.replace("cart_reminder", "cart_remindr"))
    shutil.copytree(ROOT / "templates" / "email", tmp_path / "templates" / "email")
    with pytest.raises(RuleError) as raised:
        load_sources(rules.parent, tmp_path / "templates")
    [problem] = raised.value.problems
    assert (problem.path, problem.line) == (rules, 6)
    assert "unknown email template 'cart_remindr' (known: cart_reminder)" in problem.message


async def test_the_demo_mailbox_lists_what_arrived_with_the_html_part_sandboxed(
    settings: Settings, tmp_path: Path
) -> None:
    """`cuewire demo`'s sink: an unsigned address is mailed (the demo's own mailbox only), and
    /qa/mail shows the email: headers escaped, the HTML part in a sandboxed srcdoc iframe."""
    settings = replace(
        mail_settings(settings, tmp_path, free_port()),
        smtp_url=None,
        demo_mail_sink=True,
        mail_unverified=True,
        admin_password="pw-of-the-test",
    )
    vector = '<img src=x onerror="window.__cw_xss=1">'
    with LiveServer(settings, site_for) as server:
        services = server.services
        assert services.mail_sink is not None

        async def fire() -> None:
            now = services.clock.now_ms()
            noon = str((now // 60_000) % 1440 - 720)
            opened = await services.store.open_session("test-site", "v_d", None, now, {"tz": noon})
            origin = Origin("test-site", "v_d", opened.session, "tab1", "sid-1@x")
            traits = {"email": "shopper@example.com", "name": vector}
            events = [
                {"type": "identify", "ts": now, "seq": 0, "url": CHECKOUT, "user_id": "s"}
                | {"traits": traits, "verified": False},
                {"type": "custom", "ts": now, "seq": 1, "url": CHECKOUT}
                | {"name": "checkout_started", "props": {}},
            ]
            await services.pipeline.process(origin, events, now)

        await server.call(fire())
        sink = services.mail_sink
        await eventually(lambda: len(sink.messages), lambda n: n == 1, what="the demo email")
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/qa/mail")).status_code == 401
            page = await client.get("/qa/mail", auth=("admin", "pw-of-the-test"))
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"]
    tags = parsed(page.text)
    assert "img" not in tags.tags and "script" not in tags.tags
    assert not any(a.startswith("on") for a in tags.attributes)
    assert "sandbox" in tags.attributes and "srcdoc" in tags.attributes
    assert "To</dt><dd>shopper@example.com" in page.text
    [srcdoc] = tags.srcdocs  # the email's HTML part, as the sandboxed iframe gets it
    shown = parsed(srcdoc)
    assert "img" not in shown.tags and f"Hi {vector}!" in "".join(shown.text)
