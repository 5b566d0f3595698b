"""Site keys, their allowed origins and per-site options, from a YAML sites file.

```yaml
sites:
  shop-prod:
    origins: ["https://shop.example", "https://*.shop.example"]
    honor_dnt: true
    identity_secret: "long random string"   # signs user ids (docs/protocol.md, identify)
    allow_unsigned_identify: false          # the default when a secret is set
    api_key: "long random string"           # POST /v1/events (backend.py)
    write_key: "long random string"         # the Segment-compatible API (segment_api.py)
```
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import msgspec
import yaml
from msgspec import Meta

from .errors import ConfigError, Problem
from .protocol import error_reason
from .sources import YamlDoc, read_yaml
from .webhooks import secret_bytes


class Site(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One site key: who may connect with it and how its visitors are treated."""

    origins: Annotated[list[str], Meta(min_length=1)]
    honor_dnt: bool = False
    api_key: str | None = None  # for events from the site's backend (POST /v1/events)
    # identifies the site to the Segment-compatible API (POST /v1/track, ...): a secret of
    # the server that sends, like api_key; unique across sites
    write_key: Annotated[str, Meta(min_length=16)] | None = None
    # signs outbound webhooks (webhooks.py, Standard Webhooks): any string, or whsec_<base64>
    webhook_secret: str | None = None
    identity_secret: Annotated[str, Meta(min_length=16)] | None = None  # signs user ids
    allow_unsigned_identify: bool | None = None  # None: only when there is no identity_secret

    def __post_init__(self) -> None:
        if self.webhook_secret is not None:
            secret_bytes(self.webhook_secret)  # a whsec_ secret must be base64: ValueError

    @property
    def unsigned_identify_allowed(self) -> bool:
        """Whether an identify without a signature is accepted (as unverified). By default it
        is where the site has no ``identity_secret`` (nothing to sign with) and is not where
        it has one: a site that signs user ids wants every identify signed."""
        if self.allow_unsigned_identify is not None:
            return self.allow_unsigned_identify
        return self.identity_secret is None

    def allows(self, origin: str | None) -> bool:
        """True when ``origin`` matches an allowed pattern (``*`` globs a host part). The
        opaque origin ``null`` (a sandboxed frame, such as the QA heatmap's rendering with the
        page's scripts; a file: page) is never allowed, whatever the patterns."""
        if not origin or origin.strip().lower() == "null":
            return False
        origin = origin.rstrip("/").lower()
        return any(fnmatch.fnmatchcase(origin, p.rstrip("/").lower()) for p in self.origins)


class SitesFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    sites: dict[str, Site]


class Sites:
    """The registry of site keys."""

    def __init__(self, sites: dict[str, Site]) -> None:
        self._sites = dict(sites)
        # by the key's digest: a dict lookup by the key itself would take longer the more of
        # a stored key's start a guess matches
        self._by_write_key: dict[bytes, str] = {}
        for key, site in self._sites.items():
            if site.write_key is None:
                continue
            digest = _digest(site.write_key)
            if digest in self._by_write_key:
                raise ConfigError(
                    f"sites {self._by_write_key[digest]!r} and {key!r} have the same write_key: "
                    "a write key names one site, give each its own"
                )
            self._by_write_key[digest] = key

    def get(self, key: str) -> Site | None:
        return self._sites.get(key)

    def by_write_key(self, write_key: str) -> str | None:
        """The key of the site whose ``write_key`` this is (Segment-compatible API)."""
        return self._by_write_key.get(_digest(write_key)) if write_key else None

    def keys(self) -> Iterable[str]:
        return self._sites.keys()

    @classmethod
    def load(cls, path: Path) -> Sites:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            return cls(msgspec.convert(raw, SitesFile).sites)
        except OSError as exc:
            raise ConfigError(f"cannot read sites file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{path}: {error_reason(exc)}") from exc

    @classmethod
    def demo(cls, origins: list[str]) -> Sites:
        """The single ``demo`` site that ``cuewire demo`` serves its shop with."""
        return cls({"demo": Site(origins=origins)})


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


_ORIGIN = re.compile(r"^https?://[^/\s?#]+$")


def sites_problems(path: Path) -> list[Problem]:
    """Every problem of a sites file as ``file:line:col`` (``cuewire check --sites``): YAML,
    the shape, and origins that can never match a browser's ``Origin`` header."""
    doc = read_yaml(path)
    if isinstance(doc, Problem):
        return [doc]
    try:
        parsed = msgspec.convert(doc.data, SitesFile)
    except msgspec.ValidationError as exc:
        return _shape_problems(doc, exc)
    found: list[Problem] = []
    written: dict[str, str] = {}  # write key -> the first site with it
    for key, site in parsed.sites.items():
        if site.write_key is not None:
            if site.write_key in written:
                found.append(
                    doc.problem(
                        ["sites", key, "write_key"],
                        f"the same write_key as site {written[site.write_key]!r}: a write "
                        "key names one site, give each its own",
                    )
                )
            written.setdefault(site.write_key, key)
        for i, origin in enumerate(site.origins):
            if not _ORIGIN.match(origin.rstrip("/")):
                found.append(
                    doc.problem(
                        ["sites", key, "origins", i],
                        f"origin {origin!r} can never match: an origin is scheme://host[:port] "
                        "with no path, e.g. https://shop.example or http://localhost:8000",
                    )
                )
    return found


def _shape_problems(doc: YamlDoc, exc: msgspec.ValidationError) -> list[Problem]:
    """Shape errors placed at their site: msgspec names a map's key only as ``[...]``, so each
    site is converted on its own to find which one is wrong."""
    sites = doc.data.get("sites") if isinstance(doc.data, dict) else None
    if not isinstance(sites, dict):
        return [doc.validation_problem(exc)]
    found: list[Problem] = []
    for key, raw in sites.items():
        try:
            msgspec.convert(raw, Site)
        except msgspec.ValidationError as inner:
            found.append(doc.validation_problem(inner, ["sites", str(key)]))
    return found or [doc.validation_problem(exc)]
