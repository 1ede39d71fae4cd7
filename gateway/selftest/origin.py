"""The self-test's own web server: answers for any host name on a local address, so the proxy can send every
allowed self-test request here instead of to the internet. Each answer carries this run's mark, so the self-test
knows a page came from here and nowhere else."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

MARK_HEADER = "X-Selftest-Origin"
NEUTRAL_PAGE = "<!doctype html><title>Self-test page</title><p>The gateway self-test's own page.</p>"


class SelftestOrigin:
    def __init__(self, host: str = "127.0.0.1", pages: Mapping[str, str] | None = None) -> None:
        """`pages`: text/html bodies by path (the harmful-text pages for content analysis); any other path gets a
        short neutral page."""
        self.mark = secrets.token_hex(8)
        self._pages = dict(pages or {})
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="selftest-origin", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def __enter__(self) -> SelftestOrigin:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                # Other pages say nothing of the address asked for: content analysis must not block a page for
                # a name in it, when the self-test is checking the address lists.
                body = origin._pages.get(self.path, NEUTRAL_PAGE)
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header(MARK_HEADER, origin.mark)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the report says what was asked for."""

        return Handler
