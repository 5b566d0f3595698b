"""Templates: filters, the sandbox, untrusted data rendered inert, the checks a catalog makes
when it loads, and the starter kit's own promises (accessible, no script, light and dark)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from cuewire.errors import TemplateError
from cuewire.filters import (
    clock,
    css_color,
    css_int,
    currency,
    duration,
    number,
    plural,
    relative_time,
    safe_url,
    seconds_until,
)
from cuewire.render import Catalog, full_context, make_environment
from support.harness import write
from support.vectors import XSS_VECTORS

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
VECTORS = XSS_VECTORS
NOW = 1_764_000_000_000
STARTER_KIT = {
    "modal",
    "toast",
    "banner",
    "slidein",
    "chat_help",
    "discount_countdown",
    "product_reminder",
    "exit_offer",
}


def render(source: str, **context: Any) -> str:
    return make_environment().from_string(source).render(context)


def template(body: str, kind: str = "toast", sample: str = "{}", extra: str = "") -> str:
    return f"{{#---\nkind: {kind}\n{extra}sample: {sample}\n---#}}\n{body}\n"


def load_one(tmp_path: Path, text: str, name: str = "t") -> Catalog:
    write(tmp_path / f"{name}.html", text)
    return Catalog.load(tmp_path)


def line_of(text: str, snippet: str) -> int:
    return text[: text.index(snippet)].count("\n") + 1


def problem_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(TemplateError) as caught:
        load_one(tmp_path, text)
    [problem] = caught.value.problems
    return str(problem)


# ---------- filters ----------


@pytest.mark.parametrize(
    ("amount", "code", "shown"),
    [
        (1234.5, "USD", "$1,234.50"),
        (19.9, "EUR", "€19.90"),
        (5, "gbp", "£5.00"),
        (1500, "JPY", "¥1,500"),
        (12.5, "CHF", "CHF 12.50"),
        (-3, "USD", "-$3.00"),
        ("49.00", "USD", "$49.00"),
        ("free", "USD", "free"),
        (None, "USD", "None"),
    ],
)
def test_currency_formats_without_locale_rules(amount: Any, code: str, shown: str) -> None:
    assert currency(amount, code) == shown


def test_currency_defaults_to_dollars_in_a_template() -> None:
    assert render("{{ 189 | currency }} / {{ 189 | currency('EUR') }}") == "$189.00 / €189.00"


def test_number_groups_thousands() -> None:
    assert number(1234567) == "1,234,567"
    assert number(1234.567, 2) == "1,234.57"
    assert number("n/a") == "n/a"


@pytest.mark.parametrize(
    ("count", "args", "shown"),
    [
        (1, ("item",), "1 item"),
        (0, ("item",), "0 items"),
        (3, ("item",), "3 items"),
        (1, ("person", "people"), "1 person"),
        (2, ("person", "people"), "2 people"),
        (1500, ("visitor",), "1,500 visitors"),
        ("2", ("item",), "2 items"),
        ("some", ("item",), "some items"),
    ],
)
def test_plural(count: Any, args: tuple[str, ...], shown: str) -> None:
    assert plural(count, *args) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (NOW - 3 * 60_000, "3 minutes ago"),
        (NOW + 2 * 3_600_000, "in 2 hours"),
        (NOW - 60_000, "1 minute ago"),
        (NOW - 400, "just now"),
        (NOW - 9 * 86_400_000, "1 week ago"),
        (NOW + 400 * 86_400_000, "in 1 year"),
        (7200, "in 2 hours"),  # a delta in seconds: positive is the future
        (-45, "45 seconds ago"),
        (0, "just now"),
        ("soon", "soon"),
    ],
)
def test_relative_time_takes_epoch_ms_or_a_delta_in_seconds(value: Any, shown: str) -> None:
    assert relative_time(value, now_ms=NOW) == shown


def test_relative_time_uses_the_server_clock_by_default() -> None:
    import time

    assert render("{{ t | relative_time }}", t=int(time.time() * 1000) - 120_000) == (
        "2 minutes ago"
    )


def test_durations_and_clocks_for_countdowns() -> None:
    assert duration(900) == "15 minutes"
    assert duration(3700) == "1 hour"
    assert clock(899) == "14:59"
    assert clock(3725) == "1:02:05"
    assert clock(-5) == "00:00"
    assert seconds_until(NOW + 90_500, now_ms=NOW) == 90
    assert seconds_until(NOW - 1, now_ms=NOW) == 0
    assert seconds_until("tomorrow", now_ms=NOW) == 0
    assert css_int("45", 15, 0, 99) == 45
    assert css_int("} body { color: red", 15) == 15
    assert css_int(10**9, 0, 0, 99) == 99


@pytest.mark.parametrize(
    "url",
    [
        "/cart",
        "/product/trail-runner.html?size=42#reviews",
        "#cuewire-chat",
        "https://shop.example/sale",
        "http://localhost:8377/",
        "mailto:help@shop.example",
        "tel:+15550100",
    ],
)
def test_safe_url_keeps_links_a_prompt_may_follow(url: str) -> None:
    assert safe_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "javascript:window.__cw_xss=1",
        "JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        " javascript:alert(1)",
        "vbscript:msgbox(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "//evil.example/phish",
        "/\\evil.example",
        "evil.example",
        "",
        42,
        None,
    ],
)
def test_safe_url_drops_script_urls_and_other_hosts_without_a_scheme(url: Any) -> None:
    assert safe_url(url) == ""
    assert safe_url(url, "/cart") == "/cart"


@pytest.mark.parametrize(
    "color", ["#1f5f4a", "#fff", "rgb(31 95 74)", "hsl(160 50% 25% / 0.9)", "tomato"]
)
def test_css_color_accepts_plain_colours(color: str) -> None:
    assert css_color(color) == color


@pytest.mark.parametrize(
    "value",
    [
        "red; } body { display: none",
        "</style><script>alert(1)</script>",
        "url(javascript:alert(1))",
        "expression(alert(1))",
        "#12345",
        None,
    ],
)
def test_css_color_keeps_anything_else_out_of_the_stylesheet(value: Any) -> None:
    assert css_color(value, "#000") == "#000"


# ---------- the sandbox ----------


@pytest.mark.parametrize(
    "source",
    [
        "{{ foo.__class__.__subclasses__() }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ params.__class__.__base__.__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ range.__self__ }}",
        "{{ foo.upper.__self__.__class__ }}",
        "{{ params.update({'admin': true}) }}",
        "{{ visitor.traits.pop('name') }}",
        "{% set x = [] %}{{ x.append(1) }}",
    ],
)
def test_escapes_from_the_sandbox_are_refused(source: str) -> None:
    with pytest.raises((SecurityError, jinja2.UndefinedError)):
        render(source, foo="x", params={}, visitor={"traits": {"name": "Ada"}})


ESCAPES_BY_DATA = [
    "{{ params.update({'admin': true}) }}",
    "{{ params.clear() }}",
    "{{ params.__class__ }}",
    "{{ (params|attr('pop'))('code') }}",
    "{{ tags.append('x') }}",
    "{{ '{0.__class__.__mro__}'.format(params) }}",
    "{{ params.get.__self__.__class__ }}",
]


def test_the_sandbox_refuses_the_same_escape_every_time_and_reads_alike() -> None:
    """The sandbox remembers its verdicts on plain data (sandbox.py): a refusal stays a
    refusal on every later render, and a read stays allowed."""
    env = make_environment()
    data = {"params": {"code": "WELCOME10"}, "tags": ["a"]}
    for _ in range(3):
        for source in ESCAPES_BY_DATA:
            with pytest.raises((SecurityError, jinja2.UndefinedError)):
                env.from_string(source).render(data)
        reads = "{{ params.get('code') }} {{ params.items()|list|length }} {{ 'a,b'.split(',') }}"
        assert env.from_string(reads).render(data) == "WELCOME10 1 [&#39;a&#39;, &#39;b&#39;]"
    assert data == {"params": {"code": "WELCOME10"}, "tags": ["a"]}


def test_the_sandbox_judges_each_plain_attribute_as_jinja_does() -> None:
    """Remembered or not, the verdict on an attribute of plain data is Jinja's own."""
    ours, jinjas = make_environment(), ImmutableSandboxedEnvironment()
    values = [{}, [], (), "s", 1, 1.5, True, None, markupsafe.Markup("<b>")]
    names = {n for v in values for n in dir(v)}
    for value in values:
        for name in sorted(names):
            if not hasattr(value, name):
                continue
            attr = getattr(value, name)
            for _ in range(2):  # the second time from memory
                verdict = ours.is_safe_attribute(value, name, attr)
                assert verdict == jinjas.is_safe_attribute(value, name, attr), (value, name)


def test_a_huge_range_is_refused() -> None:
    with pytest.raises(OverflowError):
        render("{% for x in range(999999999) %}{% endfor %}")


def test_a_catalog_turns_any_failure_into_a_template_error(tmp_path: Path) -> None:
    body = "{{ params.get('n', 1) / params.get('d', 1) }}{% for x in range(params.get('r', 1)) %}{% endfor %}"
    catalog = load_one(tmp_path, template(body))
    context = full_context({})
    for params in ({"d": 0}, {"r": 10**9}):
        with pytest.raises(jinja2.TemplateError):
            catalog.render("t", {**context, "params": params})


@pytest.mark.parametrize(
    "value",
    ["{{ 7*7 }}", "{% for x in range(999999999) %}{% endfor %}", "${7*7}", "{{ ''.__class__ }}"],
)
def test_template_syntax_in_data_is_printed_literally(value: str) -> None:
    out = render(
        "<p>{{ visitor.traits.name }}</p><p>{{ event.props.q }}</p>",
        visitor={"traits": {"name": value}},
        event={"props": {"q": value}},
    )
    escaped = value.replace("'", "&#39;")
    assert out == f"<p>{escaped}</p><p>{escaped}</p>"


# ---------- untrusted values render inert in every starter template ----------


class Markup(HTMLParser):
    """The elements, attributes and style text of rendered HTML, as a browser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str, str]] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs += [(tag, name, value or "") for name, value in attrs]
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data


def parsed(html: str) -> Markup:
    markup = Markup()
    markup.feed(html)
    markup.close()
    return markup


def hostile_context(catalog: Catalog, name: str, value: str) -> dict[str, Any]:
    """The template's sample with every string a visitor or a rule could set replaced."""
    tpl = catalog.get(name)
    keys = {k for sample in tpl.samples.values() for k in sample["params"]}
    keys |= {"title", "message", "body", "cta", "href", "code", "headline", "eyebrow", "strong",
             "agent", "agent_role", "product_name", "image", "image_alt", "message_form",
             "position", "tone", "accent", "accent_ink", "currency", "mode", "minutes",
             "ends_at", "percent", "label", "dismiss", "snooze"}  # fmt: skip
    product = {"name": value, "category": value, "price": value, "url": value, "image": value}
    context = full_context({})
    context["params"] = dict.fromkeys(keys, value)
    context["visitor"]["traits"] = {"name": value, "email": value}
    context["session"]["url"] = value
    context["session"]["last"] = {
        "product_view": product,
        "add_to_cart": product,
        "checkout_started": {"items": value, "total": value},
    }
    context["event"] = {"type": "custom", "name": value, "props": product}
    return context


BAD_URL = re.compile(r"^(javascript|vbscript|data):", re.I)
URL_ATTRS = {"href", "src", "action", "formaction", "data-cw-href", "xlink:href", "srcset"}


@pytest.mark.parametrize("name", sorted(STARTER_KIT))
def test_every_xss_vector_renders_inert_in_each_starter_template(name: str) -> None:
    catalog = Catalog.load(TEMPLATES)
    own_tags = set(re.findall(r"<([a-z][a-z0-9]*)", catalog.get(name).path.read_text("utf-8")))
    for vector in VECTORS:
        html = catalog.render(name, hostile_context(catalog, name, vector))
        markup = parsed(html)
        assert markup.tags <= own_tags, f"{name}: an element came from {vector!r}"
        for tag, attr, value in markup.attrs:
            assert not attr.startswith("on"), f"{name}: <{tag} {attr}> from {vector!r}"
            bare = re.sub(r"[\x00-\x20]", "", value)
            assert attr not in URL_ATTRS or not BAD_URL.match(bare), (
                f"{name}: <{tag} {attr}={value!r}> from {vector!r}"
            )
        assert "<" not in markup.style and "javascript" not in markup.style.lower(), vector
        assert "<script" not in html.lower()
        assert html.count("<style>") == html.count("</style>") == 1


# ---------- what loading a catalog checks ----------


def test_the_starter_kit_loads_with_every_kind(tmp_path: Path) -> None:
    catalog = Catalog.load(TEMPLATES)
    assert set(catalog.names) >= STARTER_KIT
    kinds = {catalog.get(n).meta.kind for n in catalog.names}
    assert kinds == {"modal", "toast", "banner", "slidein", "chat"}
    assert all(catalog.get(n).meta.description for n in catalog.names)


def test_a_sample_field_the_context_does_not_have_is_reported_where_it_is(tmp_path: Path) -> None:
    text = template("<p>{{ session.pages }}</p>", sample="\n  session: {page_views: 3}")
    assert problem_of(tmp_path, text) == (
        f"{tmp_path / 't.html'}:4:13: sample.session: unknown field `page_views`"
    )


def test_a_variable_no_context_provides_is_reported_at_its_line(tmp_path: Path) -> None:
    text = template("<p>\n{{ basket.total }}</p>")
    assert problem_of(tmp_path, text) == (
        f"{tmp_path / 't.html'}:6:1: 'basket' is undefined: templates see prompt, params, "
        "visitor, session, event"
    )


def test_a_template_that_needs_data_the_sample_lacks_fails_at_its_line(tmp_path: Path) -> None:
    text = template("<p>\n{{ visitor.traits.name }}</p>")
    message = problem_of(tmp_path, text)
    assert message.startswith(f"{tmp_path / 't.html'}:6:1: rendering the sample data: ")
    assert "has no attribute 'name'" in message


def test_a_template_must_render_for_a_visitor_nothing_is_known_about(tmp_path: Path) -> None:
    text = template(
        "<p>{{ event.props.name }}</p>", sample="\n  event: {props: {name: Trail Runner}}"
    )
    message = problem_of(tmp_path, text)
    line = line_of(text, "<p>")
    assert message.startswith(f"{tmp_path / 't.html'}:{line}:1: rendering with no data")
    assert "give optional values a default" in message


def test_each_sample_variant_is_rendered_and_checked(tmp_path: Path) -> None:
    extra = "variants:\n  bad:\n    params: {n: many}\n"
    text = template("{{ params.get('n', 1) + 1 }}", extra=extra)
    message = problem_of(tmp_path, text)
    line = line_of(text, "{{ params")
    assert message.startswith(f"{tmp_path / 't.html'}:{line}:1: rendering variant 'bad': ")
    assert "TypeError" in message


def test_variants_merge_into_the_sample(tmp_path: Path) -> None:
    sample = "\n  visitor: {traits: {name: Ada, plan: pro}}\n  params: {title: Hi, cta: Go}"
    extra = "variants:\n  anonymous:\n    visitor: {traits: {}}\n    params: {cta: Buy}\n"
    catalog = load_one(tmp_path, template("x", sample=sample, extra=extra))
    samples = catalog.get("t").samples
    assert list(samples) == ["default", "anonymous"]
    assert samples["default"]["visitor"]["traits"] == {"name": "Ada", "plan": "pro"}
    assert samples["anonymous"]["visitor"]["traits"] == {}  # an empty map clears
    assert samples["anonymous"]["params"] == {"title": "Hi", "cta": "Buy"}
    assert samples["anonymous"]["session"] == {
        "url": "http://localhost/",
        "path": "/",
        "pages": 1,
        "last": {},
    }


def test_a_variant_field_the_context_does_not_have_is_reported(tmp_path: Path) -> None:
    extra = "variants:\n  v:\n    visitor: {id: v_1}\n"
    message = problem_of(tmp_path, template("x", extra=extra))
    assert message.startswith(f"{tmp_path / 't.html'}:5:15: variants.v.visitor: unknown field `id`")


def test_the_default_variant_name_is_reserved(tmp_path: Path) -> None:
    extra = "variants:\n  default: {}\n"
    assert "the variant name 'default' is taken" in problem_of(tmp_path, template("x", extra=extra))


def test_an_unknown_position_is_a_metadata_error(tmp_path: Path) -> None:
    message = problem_of(tmp_path, template("x", extra="position: middle\n"))
    assert message.startswith(f"{tmp_path / 't.html'}:3:11: ")
    assert "position" in message


def test_the_default_position_fills_params_position(tmp_path: Path) -> None:
    text = template("{{ params.position }}", extra="position: top\n")
    catalog = load_one(tmp_path, text)
    context = full_context({})
    assert catalog.render("t", context) == "top"
    assert catalog.render("t", {**context, "params": {"position": "bottom"}}) == "bottom"


# ---------- the starter kit's promises ----------


@pytest.mark.parametrize("name", sorted(STARTER_KIT))
def test_starter_templates_are_accessible_and_script_free(name: str) -> None:
    catalog = Catalog.load(TEMPLATES)
    tpl = catalog.get(name)
    source = tpl.path.read_text("utf-8")
    for variant, context in tpl.samples.items():
        html = catalog.render(name, context)
        markup = parsed(html)
        assert "script" not in markup.tags
        assert not [a for _, a, _ in markup.attrs if a.startswith("on") or a == "style"], (
            "inline handlers and style attributes break under a strict CSP"
        )
        actions = [v for t, a, v in markup.attrs if a == "data-cw-action"]
        assert "dismiss" in actions, f"{name}/{variant}: nothing closes it"
        if tpl.meta.kind in ("modal", "slidein", "chat"):
            assert "click" in actions, f"{name}/{variant}: no call to action"
        closers = re.findall(r'<button[^>]*class="cw-close"[^>]*>', html)
        assert closers and all("aria-label=" in b for b in closers), "icon buttons need a label"
        if tpl.meta.kind == "modal":
            assert 'role="dialog"' in html and 'aria-modal="true"' in html
            labelled = re.search(r'aria-labelledby="([^"]+)"', html)
            assert labelled and f'id="{labelled.group(1)}"' in html
            assert "data-cw-autofocus" in html
    assert "prefers-color-scheme: dark" in source
    assert "prefers-reduced-motion: reduce" in source
    assert "max-width: 480px" in source
