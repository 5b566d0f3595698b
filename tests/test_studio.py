"""/studio: behind the admin login, every template x variant and every rule variant rendered,
re-rendered after a save, and a broken save shown as file:line while the last good stays."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from cuewire.settings import Settings
from support.harness import write
from support.servers import LiveServer, site_for
from support.waiting import eventually_blocking

pytestmark = pytest.mark.parametrize("backend_url", ["embedded"], indirect=True)

ROOT = Path(__file__).resolve().parent.parent
AUTH = ("admin", "s3cret-for-tests")

RULES = """\
rules:
  - id: exit-test
    description: Two headlines against each other, with a holdout.
    trigger:
      event: {type: exit_intent}
    show:
      template: modal
      params: {title: "Base title", cta: "Go"}
      holdout: 0.2
      variants:
        - {id: plain, weight: 1}
        - {id: bold, weight: 1, params: {title: "Bold title"}}
        - {id: toasty, weight: 2, template: toast, params: {message: "Toast variant"}}
  - id: welcome
    trigger:
      event: {type: page_view}
    show:
      template: toast
      params: {message: "Hello from the rule"}
"""


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, Path]:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    rules = write(tmp_path / "rules" / "studio.yaml", RULES).parent
    return rules, templates


@pytest.fixture
def studio(settings: Settings, sources: tuple[Path, Path]) -> Iterator[LiveServer]:
    rules, templates = sources
    configured = replace(settings, rules_dir=rules, templates_dir=templates, admin_password=AUTH[1])
    with LiveServer(configured, site_for) as server:
        yield server


def state(server: LiveServer, **params: str) -> dict[str, Any]:
    response = httpx.get(server.url + "/studio/api/state", auth=AUTH, params=params)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def previews(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["key"]: p for p in body["previews"]}


def wait_for(
    server: LiveServer, until: Callable[[dict[str, Any]], bool], timeout: float = 3.0
) -> tuple[dict[str, Any], float]:
    """Poll the state the way the page does; return it and the seconds it took."""
    start = time.monotonic()
    body = eventually_blocking(
        lambda: state(server), until, timeout=timeout, interval=0.05, what="the studio updating"
    )
    return body, time.monotonic() - start


def test_the_studio_is_off_without_an_admin_password(live: LiveServer) -> None:
    response = httpx.get(live.url + "/studio/")
    assert response.status_code == 503
    assert "CUEWIRE_ADMIN_PASSWORD" in response.text
    assert httpx.get(live.url + "/studio/api/state", auth=AUTH).status_code == 503


def test_the_studio_needs_the_admin_login(studio: LiveServer) -> None:
    for path in ("/studio/", "/studio/api/state", "/studio/static/studio.js"):
        response = httpx.get(studio.url + path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Basic")
        assert httpx.get(studio.url + path, auth=("admin", "wrong")).status_code == 401


def test_the_page_loads_its_own_script_under_a_strict_csp(studio: LiveServer) -> None:
    redirect = httpx.get(studio.url + "/studio")
    assert redirect.status_code == 307
    assert redirect.headers["location"].endswith("/studio/")
    page = httpx.get(studio.url + "/studio/", auth=AUTH)
    assert page.status_code == 200
    assert '<script src="static/studio.js" defer></script>' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    script = httpx.get(studio.url + "/studio/static/studio.js", auth=AUTH)
    assert script.status_code == 200
    assert "adoptedStyleSheets" in script.text


def test_every_template_and_sample_variant_is_previewed(studio: LiveServer) -> None:
    body = state(studio)
    assert body["error"] is None
    shown = previews(body)
    catalog = studio.services.runtime.catalog()
    for name in catalog.names:
        for variant in catalog.get(name).samples:
            preview = shown[f"template:{name}:{variant}"]
            assert preview["html"] and preview["error"] is None, preview
            assert preview["kind"] == catalog.get(name).meta.kind
    assert "template:banner:bottom" in shown
    assert "cw-bottom" in shown["template:banner:bottom"]["html"]
    assert "cw-top" in shown["template:banner:default"]["html"]


def test_each_rule_variant_is_previewed_with_its_params(studio: LiveServer) -> None:
    shown = previews(state(studio))
    plain, bold = shown["rule:exit-test:plain"], shown["rule:exit-test:bold"]
    toasty = shown["rule:exit-test:toasty"]
    assert "Base title" in plain["html"] and "Bold title" in bold["html"]
    assert toasty["template"] == "toast" and "Toast variant" in toasty["html"]
    assert "[20% of visitors; holdout 20% (recorded, not shown)]" in plain["note"]
    assert "[40% of visitors" in toasty["note"]
    assert "Hello from the rule" in shown["rule:welcome:"]["html"]


def test_an_unchanged_state_is_not_sent_again(studio: LiveServer) -> None:
    version = state(studio)["version"]
    assert state(studio, v=version) == {"version": version, "unchanged": True}


def test_a_saved_template_is_rerendered(studio: LiveServer, sources: tuple[Path, Path]) -> None:
    _, templates = sources
    path = templates / "toast.html"
    before = state(studio)["generation"]
    path.write_text(path.read_text().replace("Nice pick!", "Brand new title"))
    body, took = wait_for(
        studio, lambda b: "Brand new title" in previews(b)["template:toast:default"]["html"]
    )
    print(f"template save to new preview: {took:.2f} s")  # reported, never asserted
    assert body["generation"] > before
    assert body["error"] is None


def test_a_broken_save_shows_file_and_line_and_keeps_the_last_good_preview(
    studio: LiveServer, sources: tuple[Path, Path]
) -> None:
    _, templates = sources
    path = templates / "toast.html"
    good = path.read_text()
    last_good = previews(state(studio))["template:toast:default"]["html"]
    line = good[: good.index('<p class="cw-message">')].count("\n") + 1
    path.write_text(good.replace('<p class="cw-message">', '<p class="cw-message">{% if %}'))

    body, _ = wait_for(studio, lambda b: b["error"] is not None)
    assert body["error"].startswith(f"{path}:{line}:1: ")
    toast = previews(body)["template:toast:default"]
    assert toast["problems"].startswith(f"{path}:{line}:1: ")
    assert toast["html"] == last_good and toast["stale"] is True
    modal = previews(body)["template:modal:default"]
    assert modal["html"] and modal["problems"] is None  # other templates keep their preview

    path.write_text(good.replace("Nice pick!", "Fixed it"))
    body, _ = wait_for(studio, lambda b: b["error"] is None)
    toast = previews(body)["template:toast:default"]
    assert "Fixed it" in toast["html"] and toast["stale"] is False


def test_a_new_template_with_an_error_shows_only_its_error(
    studio: LiveServer, sources: tuple[Path, Path]
) -> None:
    _, templates = sources
    path = write(templates / "promo.html", "{#---\nkind: toast\n---#}\n<p>{{ basket.total }}</p>\n")
    body, _ = wait_for(studio, lambda b: "template:promo:default" in previews(b))
    promo = previews(body)["template:promo:default"]
    assert promo["html"] is None
    assert promo["error"] == (
        f"{path}:4:1: 'basket' is undefined: templates see prompt, params, visitor, session, event"
    )
    assert body["error"] == promo["error"]
