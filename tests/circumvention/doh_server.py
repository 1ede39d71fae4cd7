"""A small DNS-over-HTTPS server on loopback for the tests: RFC 8484 (`application/dns-message`, POST and GET
`?dns=`) and the JSON API (`/resolve?name=&type=`), answering every A query with one address; any other path gets
a small HTML page, so it also serves as the origin of ordinary browsing. TLS and plain HTTP on one port (the first
byte decides), with certificates from the test origin CA for whatever name the client asks."""

from __future__ import annotations

import base64
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.circumvention.wire import dns_answer
from tests.support.origins import OriginCA

ANSWER = "192.0.2.53"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """The server keeps its own record."""

    def _answer(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.owner.record(self.command, self.headers.get("Host", ""), self.path)
        query = parse_qs(split.query)
        if split.path == "/dns-query" and (self.command == "POST" or "dns" in query):
            wire = body or base64.urlsafe_b64decode(query["dns"][0] + "=" * (-len(query["dns"][0]) % 4))
            self.server.owner.queries += 1
            self._send("application/dns-message", dns_answer(wire, ANSWER))
        elif split.path == "/resolve" and "name" in query:
            self.server.owner.queries += 1
            answer = {"Status": 0, "Answer": [{"name": query["name"][0], "type": 1, "TTL": 60, "data": ANSWER}]}
            self._send("application/dns-json", json.dumps(answer).encode())
        elif split.path.endswith(".json"):
            self._send("application/json", b'{"ok": true}')
        else:
            self._send("text/html; charset=utf-8", b"<!doctype html><title>ok</title><p>page ok</p>")

    def _send(self, content_type: str, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: DohServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        try:
            first = request.recv(1, socket.MSG_PEEK)
            if first[:1] == b"\x16":
                request = self.owner.tls.wrap_socket(request, server_side=True)
            super().finish_request(request, client_address)
        except OSError:
            pass


class DohServer:
    def __init__(self) -> None:
        self.ca = OriginCA()
        self.tls = self.ca.sni_context()
        self.queries = 0
        self.seen: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._server = _Server(self)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def record(self, method: str, host: str, path: str) -> None:
        with self._lock:
            self.seen.append((method, host, path))

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
