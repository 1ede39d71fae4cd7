"""The benchmarks' origin: one loopback port answering plain HTTP/1.1, HTTPS/1.1 and HTTP/2 over TLS.

    .venv/bin/python bench/bench_origin.py CA_DIR HOST H1_HOST

prints its port, then serves until killed. Every request gets the same 13-byte ``text/plain`` body, except, over
HTTP/1.1, ``/page.html`` (bench/lesson_page.py's 50 KB HTML page of lesson text, a counter at its end making every
response new, so a gateway with content analysis reads each one in full instead of remembering its finding); a
request with ``Connection: close`` gets its answer and then the connection closed. The first byte of a
connection decides between plain and TLS (0x16 is a TLS handshake record), because
tests/support/route_to_origin.py sends every upstream connection of a proxy to one address. Over TLS it presents
a certificate for the name the client asked for (SNI), HOST or H1_HOST, signed by a throwaway CA
(tests/support/origins.py's OriginCA) written to CA_DIR, which the proxies trust (``ssl_verify_upstream_trusted_ca``).
As HOST it offers ALPN h2 before http/1.1; as H1_HOST only http/1.1, like the many sites that do not speak h2.
Both matter: mitmproxy mirrors the origin's ALPN to its client when it connects upstream before the client's TLS
handshake (its default eager strategy), but with ``connection_strategy=lazy`` it has no upstream yet, gives an h2
client h2, and must then carry h2 streams over HTTP/1.1 connections to an H1_HOST origin.

It runs in its own process, asyncio on one thread, so it is not what limits the figures; its CPU time is on the
same machine as the proxy and the client, though, and that is printed beside the figures.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from lesson_page import COUNTER, COUNTER_SIZE, html_page  # noqa: E402

from tests.support.mitmdump import die_with_parent  # noqa: E402
from tests.support.origins import OriginCA  # noqa: E402

ORIGIN_BODY = b"bench origin\n"
ORIGIN_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
    + str(len(ORIGIN_BODY)).encode()
    + b"\r\n\r\n"
    + ORIGIN_BODY
)
PAGE_REQUEST = b"GET /page.html"
PAGE = html_page()
PAGE_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: "
    + str(len(PAGE) + COUNTER_SIZE).encode()
    + b"\r\n\r\n"
    + PAGE
)
H2_HEADERS = [(b":status", b"200"), (b"content-type", b"text/plain"), (b"content-length", str(len(ORIGIN_BODY)).encode())]
CA_CERT_NAME = "origin-ca-cert.pem"
"""The file OriginCA writes its certificate to, in CA_DIR."""
_TLS_HANDSHAKE = 0x16


class _OriginProtocol(asyncio.Protocol):
    """Answers every request with ORIGIN_RESPONSE, or PAGE for PAGE_REQUEST; HTTP/2 when TLS negotiated h2, else
    HTTP/1.1 keep-alive."""

    pages_served = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""
        tls = transport.get_extra_info("ssl_object")
        self.h2: h2.connection.H2Connection | None = None
        if tls is not None and tls.selected_alpn_protocol() == "h2":
            self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
            self.h2.initiate_connection()
            self.transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        if self.h2 is not None:
            self._h2_received(self.h2, data)
            return
        # The benchmark's requests have no bodies: one blank line ends each.
        self.buffer += data
        count = self.buffer.count(b"\r\n\r\n")
        if count:
            requests, _, self.buffer = self.buffer.rpartition(b"\r\n\r\n")
            if PAGE_REQUEST in requests:
                self.transport.write(b"".join(self._answer(head) for head in requests.split(b"\r\n\r\n")))
            else:
                self.transport.write(ORIGIN_RESPONSE * count)
            # As an HTTP/1.1 server does: a client that passes TLS through a proxy untouched relies on it.
            if b"\nconnection: close" in requests.lower():
                self.transport.close()

    @classmethod
    def _answer(cls, head: bytes) -> bytes:
        if not head.lstrip().startswith(PAGE_REQUEST):
            return ORIGIN_RESPONSE
        cls.pages_served += 1
        return PAGE_RESPONSE + COUNTER % cls.pages_served

    def _h2_received(self, conn: h2.connection.H2Connection, data: bytes) -> None:
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.StreamEnded):
                conn.send_headers(event.stream_id, H2_HEADERS)
                conn.send_data(event.stream_id, ORIGIN_BODY, end_stream=True)
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.transport.close()
        self.transport.write(conn.data_to_send())


async def _first_byte(conn: socket.socket) -> bytes:
    """The connection's first byte, left in the socket for whoever reads it next."""
    loop = asyncio.get_running_loop()
    readable = loop.create_future()
    loop.add_reader(conn.fileno(), lambda: readable.done() or readable.set_result(None))
    try:
        await readable
    finally:
        loop.remove_reader(conn.fileno())
    return conn.recv(1, socket.MSG_PEEK)


async def _serve_connection(conn: socket.socket, tls: ssl.SSLContext) -> None:
    try:
        first = await _first_byte(conn)
        context = tls if first and first[0] == _TLS_HANDSHAKE else None
        await asyncio.get_running_loop().connect_accepted_socket(_OriginProtocol, conn, ssl=context)
    except (OSError, ssl.SSLError):
        conn.close()  # a client that hangs up or fails the handshake is not the benchmark's concern


def tls_context(ca_dir: Path, host: str, h1_host: str) -> ssl.SSLContext:
    """Presents HOST's certificate with ALPN h2 and http/1.1, or H1_HOST's with http/1.1 only, by SNI."""
    ca_dir.mkdir(parents=True, exist_ok=True)
    ca = OriginCA(ca_dir)
    h1_only = ca.server_context(h1_host)
    h1_only.set_alpn_protocols(["http/1.1"])
    # OriginCA caches contexts by name and the two names differ, so this does not alter h1_only.
    both = ca.server_context(host)
    both.set_alpn_protocols(["h2", "http/1.1"])

    def choose(tls: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> None:
        if server_name == h1_host:
            tls.context = h1_only

    both.sni_callback = choose
    return both


async def serve(ca_dir: Path, host: str, h1_host: str) -> None:
    tls = tls_context(ca_dir, host, h1_host)
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    listener.setblocking(False)
    print(listener.getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    connections: set[asyncio.Task[None]] = set()
    while True:
        conn, _ = await loop.sock_accept(listener)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = loop.create_task(_serve_connection(conn, tls))
        connections.add(task)  # a reference, so the task is not collected mid-handshake
        task.add_done_callback(connections.discard)


def start_origin(ca_dir: Path, host: str, h1_host: str) -> tuple[subprocess.Popen[str], int, Path]:
    """Runs the origin in its own process: (process, port, the CA certificate its TLS certificates chain to)."""
    process = subprocess.Popen(
        [sys.executable, __file__, str(ca_dir), host, h1_host], stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip().isdigit():
        process.kill()
        raise SystemExit(f"the benchmark origin did not start (got {line!r})")
    return process, int(line), ca_dir / CA_CERT_NAME


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
