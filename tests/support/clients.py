"""Real clients through the proxy: httpx and curl, from any loopback source address.

Both return a :class:`Fetched` (status, headers, body). ``ca`` is the CA file the client trusts
for HTTPS: the gateway CA (``Mitmdump.ca_cert_path``) when going through the proxy.

Different devices are different source addresses (any 127.x.y.z works on Linux, see
:func:`tests.support.ports.device_address`)::

    fetch("https://example.org/", proxy=proxy.proxy_url, ca=proxy.ca_cert_path, source_address="127.0.0.2")
    curl("https://example.org/", proxy=proxy.proxy_url, ca=proxy.ca_cert_path, source_address="127.0.0.3")

With curl the source address is ``--interface 127.0.0.2``. With httpx 0.28 it is not simply
``transport=httpx.HTTPTransport(local_address="127.0.0.2")``: given ``proxy=`` as well, the client
builds its own proxy transport without the local address, and even
``HTTPTransport(proxy=..., local_address=...)`` loses ``local_address`` (httpx does not pass it to
httpcore's proxy pool, and that pool would not use it for its connections either).
:class:`SourceBoundTransport` binds the address in httpcore's network backend, below all that;
use it (or :func:`httpx_client`) for httpx from another device.

:func:`peer_certificate` does a raw ``CONNECT`` and TLS handshake through the proxy and returns the
certificate chain the proxy presented, to check which CA signed it.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from urllib.parse import urlsplit

import httpcore
import httpx
from cryptography import x509


@dataclass(frozen=True)
class Fetched:
    """What a client got back."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    """Lower-cased names; for curl, repeated headers are joined with ``", "``."""
    body: bytes = b""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def ssl_context(ca: str | PathLike[str] | None) -> ssl.SSLContext:
    """A verifying client context trusting only ``ca`` (or the system store when ``None``)."""
    return ssl.create_default_context(cafile=str(ca)) if ca is not None else ssl.create_default_context()


class _BoundBackend(httpcore.SyncBackend):
    """httpcore's socket backend, every connection bound to one local address."""

    def __init__(self, local_address: str) -> None:
        self.local_address = local_address

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):  # type: ignore[no-untyped-def]
        return super().connect_tcp(host, port, timeout, self.local_address, socket_options)


class SourceBoundTransport(httpx.HTTPTransport):
    """An httpx transport through the HTTP ``proxy`` whose connections come from ``local_address``."""

    def __init__(self, *, proxy: str, local_address: str | None, verify: ssl.SSLContext) -> None:
        super().__init__(verify=verify, trust_env=False)
        url = httpx.URL(proxy)
        # Replaces the direct pool the base class made with a proxy pool on the bound backend.
        self._pool = httpcore.HTTPProxy(
            proxy_url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            ssl_context=verify,
            network_backend=_BoundBackend(local_address) if local_address else None,
        )


def httpx_client(
    *,
    proxy: str | None,
    ca: str | PathLike[str] | None = None,
    source_address: str | None = None,
    timeout: float = 10.0,
    follow_redirects: bool = False,
    **kwargs: object,
) -> httpx.Client:
    """An ``httpx.Client`` through ``proxy`` from ``source_address``, verifying HTTPS against ``ca``.

    Environment proxy variables are ignored (``trust_env=False``) so the test decides the route.
    Close it (or use ``with``) when done; it keeps connections alive between requests.
    """
    verify = ssl_context(ca)
    if proxy is None:
        transport = httpx.HTTPTransport(local_address=source_address, verify=verify, trust_env=False)
    else:
        transport = SourceBoundTransport(proxy=proxy, local_address=source_address, verify=verify)
    return httpx.Client(
        transport=transport, trust_env=False, timeout=timeout, follow_redirects=follow_redirects, **kwargs  # type: ignore[arg-type]
    )


def fetch(
    url: str,
    *,
    proxy: str | None,
    ca: str | PathLike[str] | None = None,
    source_address: str | None = None,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    content: bytes | str | None = None,
    data: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    follow_redirects: bool = False,
) -> Fetched:
    """One request with httpx (new connection each call). Redirects are not followed unless asked."""
    with httpx_client(
        proxy=proxy, ca=ca, source_address=source_address, timeout=timeout, follow_redirects=follow_redirects
    ) as client:
        response = client.request(method, url, headers=headers, content=content, data=data)
        return Fetched(
            status=response.status_code,
            headers=_joined(response.headers.multi_items()),
            body=response.content,
        )


def curl(
    url: str,
    *,
    proxy: str | None,
    ca: str | PathLike[str] | None = None,
    source_address: str | None = None,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    data: bytes | str | None = None,
    timeout: float = 10.0,
    extra_args: list[str] | None = None,
) -> Fetched:
    """One request with the ``curl`` command line tool.

    Runs ``curl -sS --proxy <proxy> --cacert <ca> --interface <source_address> ...``. A transport
    failure (refused connection, TLS error) raises ``subprocess.CalledProcessError`` with curl's
    message in ``stderr``; any HTTP status is returned.
    """
    with tempfile.TemporaryDirectory(prefix="curl-") as tmp:
        head_path = Path(tmp) / "headers"
        body_path = Path(tmp) / "body"
        # -q first: ignore any ~/.curlrc, so the test alone decides what curl does.
        command = ["curl", "-q", "-sS", "--max-time", str(timeout), "-X", method]
        command += ["-D", str(head_path), "-o", str(body_path), "-w", "%{http_code}"]
        command += ["--proxy", proxy] if proxy else ["--noproxy", "*"]
        if ca is not None:
            command += ["--cacert", str(ca)]
        if source_address is not None:
            command += ["--interface", source_address]
        for name, value in (headers or {}).items():
            command += ["-H", f"{name}: {value}"]
        if data is not None:
            command += ["--data-binary", "@-"]
        command += [*(extra_args or []), url]
        result = subprocess.run(
            command,
            input=data.encode() if isinstance(data, str) else data,
            capture_output=True,
            timeout=timeout + 5,
            env={k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
        )
        if result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, command, result.stdout, result.stderr)
        return Fetched(
            status=int(result.stdout.decode().strip() or 0),
            headers=_parse_curl_headers(head_path.read_text(errors="replace")),
            body=body_path.read_bytes() if body_path.exists() else b"",
        )


def open_tunnel(proxy: str, target: str, *, source_address: str | None = None) -> tuple[str, socket.socket]:
    """Send ``CONNECT target`` to ``proxy``: the reply's status line, and the socket (the tunnel, if it opened)."""
    proxy_split = urlsplit(proxy)
    sock = socket.create_connection(
        (proxy_split.hostname, proxy_split.port), timeout=10, source_address=(source_address, 0) if source_address else None
    )
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    return reply.split(b"\r\n", 1)[0].decode(errors="replace"), sock


def peer_certificate(
    url_or_host: str, *, proxy: str, ca: str | PathLike[str] | None = None, source_address: str | None = None
) -> list[x509.Certificate]:
    """The certificate chain the proxy presents for an HTTPS host (leaf first).

    Sends ``CONNECT host:port`` to ``proxy`` and does a TLS handshake with SNI ``host``. With
    ``ca`` the handshake verifies against it (raising ``ssl.SSLCertVerificationError`` if the
    chain does not lead there); with ``ca=None`` nothing is verified and the chain is just read.
    """
    target = urlsplit(url_or_host if "//" in url_or_host else f"//{url_or_host}")
    host, port = target.hostname or "", target.port or 443
    status_line, sock = open_tunnel(proxy, f"{host}:{port}", source_address=source_address)
    try:
        if " 200" not in status_line:
            raise ConnectionError(f"proxy refused CONNECT {host}:{port}: {status_line}")
        if ca is not None:
            context = ssl_context(ca)
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        with context.wrap_socket(sock, server_hostname=host) as tls:
            return [x509.load_der_x509_certificate(der) for der in tls.get_unverified_chain()]
    finally:
        sock.close()


def _joined(items: list[tuple[str, str]]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def _parse_curl_headers(raw: str) -> dict[str, str]:
    # curl -D writes every header block it saw (a proxy's CONNECT reply, 1xx, redirects); keep the last.
    blocks = [b for b in raw.replace("\r\n", "\n").split("\n\n") if b.strip()]
    if not blocks:
        return {}
    lines = blocks[-1].split("\n")[1:]
    return _joined([(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines if ":" in line)])
