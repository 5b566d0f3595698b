"""Serve the built snippet (``static/cw.js``, shipped in the package): gzip, ETag, caching."""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from .errors import ConfigError

SNIPPET_FILE = "cw.js"
CACHE_CONTROL = "public, max-age=300, stale-while-revalidate=3600"


class Snippet:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.gzipped = gzip.compress(body, compresslevel=9, mtime=0)
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'

    @classmethod
    def from_package(cls) -> Snippet:
        resource = resources.files(__package__).joinpath("static", SNIPPET_FILE)
        try:
            return cls(resource.read_bytes())
        except FileNotFoundError as exc:
            raise ConfigError(
                "the built snippet static/cw.js is missing: run `npm ci && npm run build` "
                "in client-js/ (or reinstall the package)"
            ) from exc

    async def endpoint(self, request: Request) -> Response:
        headers = {
            "ETag": self.etag,
            "Cache-Control": CACHE_CONTROL,
            "Vary": "Accept-Encoding",
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == self.etag:
            return Response(status_code=304, headers=headers)
        body = self.body
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = self.gzipped
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type="application/javascript; charset=utf-8", headers=headers)
