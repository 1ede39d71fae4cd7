"""Real origin web servers on 127.0.0.1 for end-to-end tests.

An :class:`OriginServer` is a threaded HTTP/1.1 server (keep-alive) on a free loopback port. It
answers for *any* host name, so with :mod:`tests.support.route_to_origin` loaded into mitmdump a
test can fetch ``https://www.facebook.com/`` or ``http://example.org/x`` and reach it.

With ``tls=True`` the same port also speaks TLS: the first byte of each connection decides
(0x16 is a TLS handshake record). Its certificate is minted on the fly for whatever name the
client sends in SNI and is signed by :class:`OriginCA`, a test CA written to
``ca_cert_path``; mitmdump is told to trust that file (``ssl_verify_upstream_trusted_ca``), so
upstream verification stays on, as in production. Speaking both protocols on one port is what
lets the routing script send *every* upstream connection to one address without having to guess
whether it will carry TLS (with mitmproxy's default eager connection strategy the upstream
connection for a ``CONNECT`` is opened before the client's TLS hello is seen).

Responses (``<host>`` is the request's Host header without a port, ``<path>`` includes the query):

- ``/headers``: ``application/json`` object of the request headers, names lower-cased,
  repeated headers joined with ``", "``;
- ``/bytes/<n>``: ``n`` bytes of ``0123456789abcdef`` repeated (``application/octet-stream``),
  sent with Content-Length in 1 MiB writes: a large body;
- ``/status/<code>``: that status, body ``origin status <code>``;
- ``/html/...``: a small ``text/html`` page whose ``<p>`` says ``origin ok: <host><path>``;
- anything else: ``text/plain`` body ``origin ok: <host><path>`` (see :func:`ok_body`).

Every request is recorded in :attr:`OriginServer.requests` (a :class:`SeenRequest` each), so a
test can assert that a blocked request never reached the origin.

Example::

    with OriginServer(tls=True) as origin:
        ...  # origin.port, origin.ca_cert_path, origin.requests
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import json
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.ports import LOOPBACK

_TLS_HANDSHAKE = 0x16
_PATTERN = b"0123456789abcdef"
_WRITE_SIZE = 1 << 20
_DEFAULT_NAME = "localhost"


def ok_body(host: str, path: str = "/") -> str:
    """The text body the origin sends for an ordinary path: ``origin ok: <host><path>``."""
    return f"origin ok: {host}{path}"


def pattern_bytes(n: int) -> bytes:
    """The exact body of ``/bytes/<n>``, to compare a large download against."""
    whole, rest = divmod(n, len(_PATTERN))
    return _PATTERN * whole + _PATTERN[:rest]


class OriginCA:
    """A throwaway certificate authority for the origins (not the gateway's CA).

    Certificates are EC P-256 with the extensions OpenSSL's strict verification wants (SKI/AKI,
    key usage, serverAuth), valid from yesterday for 30 days.
    """

    def __init__(self, directory: Path | None = None, common_name: str = "Gateway tests origin CA") -> None:
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="origin-ca-"))
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._leaf_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.directory = directory
        self.cert_path = directory / "origin-ca-cert.pem"
        self.cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        self._leaf_key_path = directory / "origin-leaf-key.pem"
        self._leaf_key_path.write_bytes(
            self._leaf_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self._serial = itertools.count()

    def issue(self, name: str) -> x509.Certificate:
        """A server certificate for ``name`` (a DNS name or an IP address), signed by this CA."""
        try:
            alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            alt = x509.DNSName(name)
        alt_names = [alt]
        if name == _DEFAULT_NAME:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(LOOPBACK)))
        now = datetime.datetime.now(datetime.timezone.utc)
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])]))
            .issuer_name(self.certificate.subject)
            .public_key(self._leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )

    def server_context(self, name: str = _DEFAULT_NAME) -> ssl.SSLContext:
        """A cached server-side ``SSLContext`` presenting a certificate for ``name``."""
        with self._lock:
            context = self._contexts.get(name)
            if context is None:
                context = self._new_context(name)
                self._contexts[name] = context
            return context

    def sni_context(self) -> ssl.SSLContext:
        """A server context that picks its certificate by the client's SNI (``localhost`` without SNI).

        The name the client sent is left on the socket as ``origin_sni``.
        """
        context = self._new_context(_DEFAULT_NAME)

        def choose(ssl_sock: ssl.SSLSocket, server_name: str | None, _context: ssl.SSLContext) -> None:
            ssl_sock.origin_sni = server_name  # type: ignore[attr-defined]
            if server_name:
                ssl_sock.context = self.server_context(server_name)

        context.sni_callback = choose
        return context

    def _new_context(self, name: str) -> ssl.SSLContext:
        cert_path = self.directory / f"leaf-{next(self._serial)}.pem"
        cert_path.write_bytes(self.issue(name).public_bytes(serialization.Encoding.PEM))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, self._leaf_key_path)
        context.set_alpn_protocols(["http/1.1"])
        return context


@dataclass(frozen=True)
class SeenRequest:
    """One request as the origin received it."""

    scheme: str
    """``"https"`` when it arrived over TLS, else ``"http"``."""
    sni: str | None
    """The TLS server name the client (the gateway) sent, ``None`` for plain HTTP."""
    method: str
    host: str
    """Host header without the port."""
    path: str
    """Path and query."""
    headers: dict[str, str] = field(default_factory=dict)
    """Lower-cased names; repeated headers joined with ``", "``."""
    body: bytes = b""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GatewayTestOrigin/1"
    timeout = 60
    server: "_Server"

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request stderr line; :attr:`OriginServer.requests` records requests."""

    def _headers_dict(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        return merged

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self) -> None:
        split = urlsplit(self.path)
        path = split.path or "/"
        if split.query:
            path = f"{path}?{split.query}"
        host_header = self.headers.get("Host") or split.hostname or ""
        host = urlsplit(f"//{host_header}").hostname or host_header
        tls = isinstance(self.connection, ssl.SSLSocket)
        seen = SeenRequest(
            scheme="https" if tls else "http",
            sni=getattr(self.connection, "origin_sni", None) if tls else None,
            method=self.command,
            host=host,
            path=path,
            headers=self._headers_dict(),
            body=self._read_body(),
        )
        self.server.origin.record(seen)

        segments = split.path.split("/")
        if split.path == "/headers":
            self._send(200, "application/json", json.dumps(seen.headers).encode())
        elif len(segments) == 3 and segments[1] == "bytes" and segments[2].isdigit():
            self._send_pattern(int(segments[2]))
        elif len(segments) == 3 and segments[1] == "status" and segments[2].isdigit():
            code = int(segments[2])
            self._send(code, "text/plain; charset=utf-8", f"origin status {code}".encode())
        elif split.path.startswith("/html/") or split.path == "/html":
            page = (
                "<!doctype html><html><head><meta charset=utf-8><title>origin ok</title></head>"
                f"<body><p>{ok_body(host, path)}</p></body></html>"
            )
            self._send(200, "text/html; charset=utf-8", page.encode())
        else:
            self._send(200, "text/plain; charset=utf-8", ok_body(host, path).encode())

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code not in (204, 304):
            self.wfile.write(body)

    def _send_pattern(self, n: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        if self.command == "HEAD":
            return
        block = pattern_bytes(_WRITE_SIZE)
        sent = 0
        while sent < n:
            piece = min(_WRITE_SIZE, n - sent)
            self.wfile.write(block[:piece])
            sent += piece

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, origin: "OriginServer") -> None:
        self.origin = origin
        super().__init__((origin.host, 0), _Handler)

    def finish_request(self, request, client_address) -> None:  # type: ignore[override]
        self.origin._track(request)
        try:
            conn = request
            if self.origin.tls_context is not None:
                first = request.recv(1, socket.MSG_PEEK)
                if first and first[0] == _TLS_HANDSHAKE:
                    conn = self.origin.tls_context.wrap_socket(request, server_side=True)
            super().finish_request(conn, client_address)
        except OSError:
            pass  # a client hanging up or failing the handshake is not the origin's problem
        finally:
            self.origin._untrack(request)


class OriginServer:
    """A real origin web server on ``host`` (default 127.0.0.1), a free port, in background threads.

    ``tls=True`` adds TLS on the same port with per-SNI certificates from ``ca`` (a new
    :class:`OriginCA` unless given). Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, *, tls: bool = False, ca: OriginCA | None = None, host: str = LOOPBACK) -> None:
        self.host = host
        self.ca = (ca or OriginCA()) if tls else None
        self.tls_context = self.ca.sni_context() if self.ca else None
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def tls(self) -> bool:
        return self.ca is not None

    @property
    def port(self) -> int:
        assert self._server is not None, "origin not started"
        return self._server.server_address[1]

    @property
    def address(self) -> str:
        """``host:port``: the value for the ``route_to_origin`` option."""
        return f"{self.host}:{self.port}"

    @property
    def ca_cert_path(self) -> Path | None:
        """PEM of the CA that signs this origin's certificates (``None`` without TLS)."""
        return self.ca.cert_path if self.ca else None

    def url(self, path: str = "/", *, scheme: str | None = None) -> str:
        """A URL that reaches this origin directly (not through a proxy)."""
        scheme = scheme or ("https" if self.tls else "http")
        host = _DEFAULT_NAME if scheme == "https" else self.host
        return f"{scheme}://{host}:{self.port}{path}"

    def start(self) -> "OriginServer":
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"origin:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server = None

    def __enter__(self) -> "OriginServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def record(self, seen: SeenRequest) -> None:
        with self._lock:
            self.requests.append(seen)

    def seen(self, host: str | None = None, path: str | None = None) -> list[SeenRequest]:
        """Requests received so far, optionally only those for ``host`` and/or ``path``."""
        with self._lock:
            found = list(self.requests)
        return [r for r in found if (host is None or r.host == host) and (path is None or r.path == path)]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.discard(sock)

