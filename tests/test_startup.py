"""Clients connecting while the gateway starts: after a reboot in a school day every device reconnects at once.

A real mitmdump with addons/gateway.py starts the way the README's bare command does (mitmproxy's default confdir,
so its certificate store is made only in its `running` hook) and slowly: the identity sources read a large DHCP
lease file while mitmproxy already accepts clients. Pupil devices connect from the first moment the port accepts,
in a loop, in plain HTTP and through CONNECT + TLS. The gateway must stay up, answer nothing before it is ready
but what the school's policy says, and answer correctly once it is.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.store.migrate import upgrade
from tests.support.clients import httpx_client
from tests.support.mitmdump import Mitmdump, MitmdumpError
from tests.support.origins import OriginServer
from tests.support.policies import DEMO_POLICY, demo_policy_files
from tests.support.ports import LOOPBACK, free_port

pytestmark = pytest.mark.e2e

PUPIL = "127.0.0.2"
MONDAY_LESSON = "2026-09-07T09:30"
# Enough leases that the identity sources take seconds to start on a loaded test machine.
LEASES = 120_000
READY = r"gateway ready: (?P<held>\d+) connections held during start-up go on, (?P<closed>\d+) were closed"
HOSTS = ("www.facebook.com", "www.bbc.co.uk")
PAGE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Dest": "document"}


def pupil_policy(folder: Path) -> Path:
    """The shipped demo policy with PUPIL on a pupil network."""
    demo_policy_files(folder)
    text = DEMO_POLICY.read_text().replace(
        "networks:\n", f"networks:\n  - {{name: test-pupil, subnets: [{PUPIL}/32], group: pupil}}\n", 1
    )
    path = folder / "policy.yaml"
    path.write_text(text)
    return path


def big_lease_file(path: Path) -> Path:
    expiry = int(time.time()) + 86400
    with path.open("w") as out:
        for i in range(LEASES):
            a, b, c = (i >> 16) & 255, (i >> 8) & 255, i & 255
            out.write(f"{expiry} 02:00:00:{a:02x}:{b:02x}:{c:02x} 10.{a}.{b}.{c} device{i} *\n")
    return path


def start_slowly(folder: Path, origin: OriginServer, port: int, **options: object) -> Mitmdump:
    db = f"sqlite:///{folder / 'gateway.db'}"
    upgrade(db)
    return Mitmdump(
        ["addons/gateway.py"],
        {
            "gateway_policy": pupil_policy(folder), "gateway_now": MONDAY_LESSON, "gateway_db": db,
            "gateway_spool": folder / "spool", "gateway_leases": big_lease_file(folder / "dnsmasq.leases"),
            **options,
        },
        workdir=folder,
        origin=origin,
        extra_args=["--listen-port", str(port)],
        wait_until_ready=False,
        set_confdir=False,
    ).start()  # fmt: skip


@dataclass
class Attempt:
    kind: str
    host: str
    answer: bytes = b""
    error: str = ""


@dataclass
class EarlyClients:
    """Pupil devices that connect in a loop from the first moment the proxy's port accepts."""

    port: int
    attempts: list[Attempt] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for kind in ("http", "tls"):
            for host in HOSTS:
                thread = threading.Thread(target=self._loop, args=(kind, host), daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _loop(self, kind: str, host: str) -> None:
        while not self._stop.is_set():
            try:
                sock = socket.create_connection((LOOPBACK, self.port), timeout=20, source_address=(PUPIL, 0))
            except OSError:
                time.sleep(0.005)  # not listening yet
                continue
            attempt = Attempt(kind, host)
            try:
                with sock:
                    attempt.answer = (self._http if kind == "http" else self._tls)(sock, host)
            except (OSError, ssl.SSLError) as exc:
                attempt.error = type(exc).__name__
            self.attempts.append(attempt)

    @staticmethod
    def _http(sock: socket.socket, host: str) -> bytes:
        sock.sendall(_get(f"http://{host}/", host))
        return _read_all(sock)

    @staticmethod
    def _tls(sock: socket.socket, host: str) -> bytes:
        sock.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
        established = sock.recv(4096)
        if not established.startswith(b"HTTP/1.1 200"):
            return established
        # The gateway's CA may not exist yet when the device connects: what matters here is what comes back.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with context.wrap_socket(sock, server_hostname=host) as tls:
            tls.sendall(_get("/", host))
            return _read_all(tls)


def _get(target: str, host: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\nConnection: close\r\n\r\n".encode()


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def origin() -> Iterator[OriginServer]:
    with OriginServer(tls=True) as server:
        yield server


def run_through_startup(proxy: Mitmdump, clients: EarlyClients) -> re.Match[str]:
    clients.start()
    try:
        ended = proxy.wait_for_output(rf"{READY}|Errors? logged during startup", timeout=120)
        time.sleep(1.0)  # the loops go on a little with the gateway up
    finally:
        clients.stop()
    assert proxy.running, proxy.output()[-3000:]
    assert ended["held"] is not None, ended[0]
    return ended


def assert_only_the_policy_answered(clients: EarlyClients, origin: OriginServer) -> None:
    answered = [a for a in clients.attempts if a.answer]
    # Plain HTTP and CONNECT + TLS, to a blocked and an allowed site: each got through start-up to an answer.
    assert {(a.kind, a.host) for a in answered} == {(k, h) for k in ("http", "tls") for h in HOSTS}
    for attempt in answered:
        if attempt.host == "www.facebook.com":
            assert attempt.answer.startswith(b"HTTP/1.1 403"), attempt
            assert b"This page is blocked" in attempt.answer, attempt
        else:
            assert attempt.answer.startswith(b"HTTP/1.1 200"), attempt
            assert b"origin ok: www.bbc.co.uk/" in attempt.answer, attempt
    assert origin.seen(host="www.facebook.com") == []


def assert_answers_correctly(proxy: Mitmdump) -> None:
    with httpx_client(proxy=proxy.proxy_url_for(LOOPBACK), ca=proxy.ca_cert_path, source_address=PUPIL) as http:
        for scheme in ("http", "https"):
            blocked = http.get(f"{scheme}://www.facebook.com/", headers=PAGE)
            assert blocked.status_code == 403 and "This page is blocked" in blocked.text
            allowed = http.get(f"{scheme}://www.bbc.co.uk/bitesize")
            assert allowed.status_code == 200 and "origin ok: www.bbc.co.uk/bitesize" in allowed.text


def test_clients_connecting_during_startup_are_held_then_filtered(tmp_path, origin):
    port = free_port()
    clients = EarlyClients(port)
    proxy = start_slowly(tmp_path, origin, port)
    try:
        ready = run_through_startup(proxy, clients)
        assert int(ready["held"]) > 0, "no client connected before the gateway was ready"
        assert_only_the_policy_answered(clients, origin)
        proxy.addresses[LOOPBACK] = port
        assert_answers_correctly(proxy)
    finally:
        proxy.stop()


def test_a_client_held_too_long_is_closed_unanswered_and_the_gateway_comes_up(tmp_path, origin):
    port = free_port()
    clients = EarlyClients(port)
    proxy = start_slowly(tmp_path, origin, port, gateway_startup_hold_ms=300)
    try:
        ready = run_through_startup(proxy, clients)
        assert int(ready["closed"]) > 0
        assert re.search(r"closed 127\.0\.0\.2 unanswered: the gateway was still starting after 300 ms", proxy.output())
        closed_early = [a for a in clients.attempts if not a.answer]
        assert closed_early, "every early client was answered: start-up was too quick to test the hold limit"
        assert_only_the_policy_answered(clients, origin)
        proxy.addresses[LOOPBACK] = port
        assert_answers_correctly(proxy)
    finally:
        proxy.stop()


def test_a_negative_hold_is_refused_with_a_clear_error(tmp_path):
    proxy = Mitmdump(
        ["addons/gateway.py"],
        {
            "gateway_policy": pupil_policy(tmp_path), "gateway_db": f"sqlite:///{tmp_path / 'gateway.db'}",
            "gateway_spool": tmp_path / "spool", "gateway_startup_hold_ms": -1,
        },  # fmt: skip
        workdir=tmp_path,
    )
    with pytest.raises(MitmdumpError, match="gateway_startup_hold_ms must be 0 or more, not -1"):
        proxy.start()
