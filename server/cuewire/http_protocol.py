"""uvicorn's HTTP protocol (httptools), whose graceful stop answers a request already sent.

When a server stops (SIGTERM; each worker in turn in a rolling restart, workers.py), uvicorn
stops accepting and then closes at once every connection that is not inside a request. A
connection accepted a moment before, whose request still sits unread in its socket, is
closed with it: the client sees the connection dropped without an answer, and a client only
retries a request on a connection it had used before. A rolling restart of 2 workers under
16 clients opening a connection per request dropped 2 to 5 requests this way
(tests/test_workers.py). Here a connection that has not begun a request is given
``FIRST_REQUEST_S`` to send one; uvicorn's shutdown waits for open connections, so that
request is answered, and the connection closed after it. A second, not less: with a quarter
of a second, one request in three restarts was still dropped (a loaded client had not sent
it yet). A connection that sends nothing delays the stop by that second at most."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

FIRST_REQUEST_S = 1.0


class HttpProtocol(HttpToolsProtocol):
    """``uvicorn --http`` for Cuewire's servers (transport.uvicorn_options)."""

    _stop_asked = False

    def shutdown(self) -> None:
        if self.cycle is None and not self._stop_asked:
            self._stop_asked = True
            self.loop.call_later(FIRST_REQUEST_S, self.shutdown)
            return
        super().shutdown()
