"""Selective interception through a real gateway (mitmdump -s addons/gateway.py) and a real HTTPS origin: a host
passed through for the client's group shows the client the origin's own certificate and is logged as one
connection row (host, group, bytes); every other host shows the gateway's certificate. And the ways a pupil might
try to ride a pass-through: another name in the hello, no name, a hidden (ECH) name, an address, other spellings,
the other group's entry, a policy reload that takes the entry away."""

from __future__ import annotations

import socket
import sqlite3
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509

from tests.support.clients import curl, open_tunnel
from tests.support.gateway import start_gateway
from tests.support.mitmdump import Mitmdump
from tests.support.origins import OriginServer
from tests.support.policies import demo_policy_with_devices

pytestmark = pytest.mark.e2e

PUPIL = "127.0.0.2"
STAFF = "127.0.0.3"
# In the demo policy's education_trusted list, passed through for pupils and staff.
TRUSTED = "www.ixl.com"
# Passed through for staff only (the demo's MIS and safeguarding entry) and, added here, for pupils only.
STAFF_ONLY = "login.arbor-education.com"
PUPIL_ONLY = "maths-games.example"
PUPIL_ENTRY = "    - groups: [pupil]\n      domains: [maths-games.example, blocked-games.example]\n"
# On the demo's drugs list, which staff are allowed but flagged on: each visit must be seen to be reported.
STAFF_ENTRY = "    - groups: [staff]\n      domains: [erowid.org]\n"
RULE = ("  - {id: no-blocked-games, domains: [blocked-games.example], action: block,"
        " reason: Games are not allowed.}\n")  # fmt: skip


def policy(folder: Path, pupil_entry: bool = True) -> Path:
    """The demo policy with a staff device, a pupil-only pass-through entry and a rule blocking one of its hosts."""
    replace = {"rules:\n": "rules:\n" + RULE}
    if pupil_entry:
        replace["  pass_through:\n"] = "  pass_through:\n" + PUPIL_ENTRY + STAFF_ENTRY
    return demo_policy_with_devices(folder, {PUPIL: "pupil", STAFF: "staff"}, replace=replace)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, origin):
    folder = tmp_path_factory.mktemp("selective")
    proxy = start_gateway(folder, policy(folder), origin=origin)
    yield proxy
    proxy.stop()


def issuer(proxy: Mitmdump, origin: OriginServer, target: str, sni: str | None, source: str) -> str:
    """Whose certificate the client is shown in a tunnel to `target` with `sni` in its hello: "origin", "gateway",
    or "closed" when no certificate came."""
    status, sock = open_tunnel(proxy.proxy_url, target, source_address=source)
    assert " 200" in status, status
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with context.wrap_socket(sock, server_hostname=sni) as tls:
            der = tls.getpeercert(binary_form=True)
            if sni:
                tls.sendall(f"GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
                while tls.recv(65536):
                    pass
    except (ssl.SSLError, ConnectionError, TimeoutError):
        return "closed"
    assert der is not None
    name = x509.load_der_x509_certificate(der).issuer
    return {ca_subject(origin.ca_cert_path): "origin", ca_subject(proxy.ca_cert_path): "gateway"}.get(name, str(name))


def ca_subject(path: Path | None) -> x509.Name:
    assert path is not None
    return x509.load_pem_x509_certificate(Path(path).read_bytes()).subject


def rows(proxy: Mitmdump, where: str, *, expect: bool = True) -> list[sqlite3.Row]:
    """Access-log rows, once the writer has written them (it batches every half second)."""
    deadline = time.monotonic() + (15 if expect else 2)
    while True:
        with sqlite3.connect(proxy.workdir / "gateway.db") as db:
            db.row_factory = sqlite3.Row
            found = db.execute(f"SELECT * FROM access_log WHERE {where} ORDER BY id").fetchall()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_pass_through_host_shows_the_origins_certificate_and_is_logged_once_with_group_and_bytes(gateway, origin):
    origin.clear()
    got = curl(f"https://{TRUSTED}/lesson", proxy=gateway.proxy_url, ca=origin.ca_cert_path, source_address=PUPIL)
    # curl trusts only the origin's CA: the handshake succeeding proves the gateway did not decrypt.
    assert got.status == 200 and f"origin ok: {TRUSTED}/lesson" in got.text
    logged = rows(gateway, f"host = '{TRUSTED}'")
    assert len(logged) == 1, "one row for the connection, none for the requests the gateway could not see"
    row = logged[0]
    assert row["method"] == "CONNECT" and row["sni"] == TRUSTED and row["action"] == "allow"
    assert row["group_name"] == "pupil" and row["client_ip"] == PUPIL
    assert row["bytes_up"] > 100 and row["bytes_down"] > len(got.text) and row["duration_ms"] is not None


def test_an_intercepted_host_shows_the_gateways_certificate(gateway, origin):
    assert issuer(gateway, origin, "www.bbc.co.uk:443", "www.bbc.co.uk", PUPIL) == "gateway"
    got = curl("https://www.bbc.co.uk/news", proxy=gateway.proxy_url, ca=gateway.ca_cert_path, source_address=PUPIL)
    assert got.status == 200
    assert rows(gateway, "host = 'www.bbc.co.uk' AND method = 'GET'"), "an intercepted request is logged as a request"


def test_each_groups_entry_applies_to_that_group_alone(gateway, origin):
    assert issuer(gateway, origin, f"{TRUSTED}:443", TRUSTED, STAFF) == "origin"
    assert issuer(gateway, origin, f"{STAFF_ONLY}:443", STAFF_ONLY, STAFF) == "origin"
    assert issuer(gateway, origin, f"{STAFF_ONLY}:443", STAFF_ONLY, PUPIL) == "gateway"
    assert issuer(gateway, origin, f"{PUPIL_ONLY}:443", PUPIL_ONLY, PUPIL) == "origin"
    assert issuer(gateway, origin, f"{PUPIL_ONLY}:443", PUPIL_ONLY, STAFF) == "gateway"
    staff_row = rows(gateway, f"host = '{STAFF_ONLY}' AND bytes_down IS NOT NULL")[-1]
    assert staff_row["group_name"] == "staff" and staff_row["client_ip"] == STAFF


def test_a_blocked_host_on_a_pass_through_entry_still_gets_the_block_page(gateway, origin):
    origin.clear()
    got = curl("https://blocked-games.example/", proxy=gateway.proxy_url, ca=gateway.ca_cert_path,
               source_address=PUPIL, headers={"Accept": "text/html"})  # fmt: skip
    assert got.status == 403 and "Games are not allowed" in got.text
    assert not origin.seen(host="blocked-games.example")


def test_a_flagged_host_on_a_pass_through_entry_is_intercepted_so_each_visit_is_reported(gateway, origin):
    assert issuer(gateway, origin, "erowid.org:443", "erowid.org", STAFF) == "gateway"
    got = curl("https://erowid.org/chemicals", proxy=gateway.proxy_url, ca=gateway.ca_cert_path, source_address=STAFF)
    assert got.status == 200
    row = rows(gateway, "host = 'erowid.org' AND method = 'GET'")[-1]
    assert row["action"] == "flag" and row["path"] == "/chemicals"


@pytest.mark.parametrize(("target", "sni"), [
    ("www.bbc.co.uk", TRUSTED),  # an intercepted target, a pass-through name
    (TRUSTED, "www.bbc.co.uk"),  # a pass-through target, another name
    ("cdn.ixl.com", TRUSTED),  # both pass through, but they are not the same host
])  # fmt: skip
def test_a_hello_naming_another_host_than_the_connect_is_intercepted(gateway, origin, target, sni):
    assert issuer(gateway, origin, f"{target}:443", sni, PUPIL) == "gateway"


def test_a_hello_without_a_name_is_never_passed_through(gateway, origin):
    assert issuer(gateway, origin, f"{TRUSTED}:443", None, STAFF) != "origin"


@pytest.mark.parametrize(("target", "sni"), [("WWW.IXL.COM.", TRUSTED), (TRUSTED, "WWW.IXL.COM"),
                                             ("www.ixl.com.", "www.ixl.com")])  # fmt: skip
def test_other_spellings_of_a_pass_through_host_are_the_same_host(gateway, origin, target, sni):
    assert issuer(gateway, origin, f"{target}:443", sni, PUPIL) == "origin"


def test_an_address_with_a_pass_through_name_is_intercepted_unless_the_name_resolves_to_it(gateway, origin):
    """CONNECT to an address with a trusted name in the hello: the name does not lead to that address, so the
    connection might go anywhere; it is intercepted (for staff) or blocked as a bare address (for pupils)."""
    assert issuer(gateway, origin, "93.184.216.34:443", TRUSTED, STAFF) == "gateway"
    assert issuer(gateway, origin, "93.184.216.34:443", TRUSTED, PUPIL) != "origin"


def client_hello(sni: str, *, extra_extension: int | None = None) -> bytes:
    """A real TLS ClientHello from Python's ssl for `sni`, with one more extension (type `extra_extension`, 32
    bytes of body) appended and every length fixed: an ECH-shaped hello, as a browser using ECH sends."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    record = outgoing.read()
    assert record[0] == 0x16 and record[5] == 0x01
    if extra_extension is None:
        return record
    body = bytearray(record[9:])
    # version, random, session id, cipher suites, compression methods; then the extensions' length.
    at = 2 + 32
    at += 1 + body[at]
    at += 2 + int.from_bytes(body[at:at + 2], "big")
    at += 1 + body[at]
    extensions = int.from_bytes(body[at:at + 2], "big")
    added = extra_extension.to_bytes(2, "big") + (32).to_bytes(2, "big") + bytes(range(32))
    body[at:at + 2] = (extensions + len(added)).to_bytes(2, "big")
    body += added
    handshake = b"\x01" + len(body).to_bytes(3, "big") + bytes(body)
    return record[:3] + len(handshake).to_bytes(2, "big") + handshake


def send_hello(proxy: Mitmdump, target: str, hello: bytes, source: str) -> bytes:
    status, sock = open_tunnel(proxy.proxy_url, target, source_address=source)
    assert " 200" in status
    sock.sendall(hello)
    sock.settimeout(5)
    try:
        answer = sock.recv(65536)
    except (TimeoutError, ConnectionError):
        answer = b""
    sock.close()
    return answer


@pytest.mark.parametrize("extension", [0xFE0D, 0xFFCE], ids=["ech", "esni"])
def test_a_hello_that_hides_its_real_name_is_never_passed_through(gateway, origin, extension):
    """The name in the clear of an ECH hello is the front; the site is inside. The same hello without the hidden
    name passes through (the control), so the refusal is the extension's doing."""
    control = "lessons.mathletics.com"
    hidden = f"hidden-{extension:x}.mathletics.com"
    assert send_hello(gateway, f"{control}:443", client_hello(control), STAFF)
    send_hello(gateway, f"{hidden}:443", client_hello(hidden, extra_extension=extension), STAFF)
    assert rows(gateway, f"host = '{control}' AND bytes_up IS NOT NULL"), "the control hello was passed through"
    assert not rows(gateway, f"host = '{hidden}' AND bytes_up IS NOT NULL", expect=False)


def test_a_reload_that_removes_a_pass_through_intercepts_new_connections(tmp_path, origin):
    path = policy(tmp_path)
    proxy = start_gateway(tmp_path, path, origin=origin, gateway_reload_interval_ms=100)
    try:
        assert issuer(proxy, origin, f"{PUPIL_ONLY}:443", PUPIL_ONLY, PUPIL) == "origin"
        mark = proxy.mark()
        path.write_text(path.read_text().replace(PUPIL_ENTRY, ""))
        proxy.wait_for_output(r"policy .* loaded", after=mark, timeout=30)
        assert issuer(proxy, origin, f"{PUPIL_ONLY}:443", PUPIL_ONLY, PUPIL) == "gateway"
        # The entries left still pass through.
        assert issuer(proxy, origin, f"{TRUSTED}:443", TRUSTED, PUPIL) == "origin"
    finally:
        proxy.stop()



def test_a_connection_arriving_with_its_destination_passes_through_when_the_name_leads_there(tmp_path, origin):
    """SOCKS5 by address (transparent mode decides the same way): the hello's name is passed through for pupils
    and resolves to the destination, so pupils reach the origin undecrypted; staff, without the entry, do not."""
    name = socket.gethostname()
    if not any(info[4][0] == "127.0.0.1" for info in socket.getaddrinfo(name, 80)):
        pytest.skip(f"{name} does not resolve to 127.0.0.1 here")
    path = policy(tmp_path)
    path.write_text(path.read_text().replace("domains: [maths-games.example", f"domains: [{name}, maths-games.example"))
    proxy = start_gateway(tmp_path, path, extra_args=["--mode", "socks5"], gateway_reachable_internal=[origin.address],
                          ssl_verify_upstream_trusted_ca=str(origin.ca_cert_path))  # fmt: skip
    try:
        port = origin.address.split(":")[1]

        def fetch(source: str) -> subprocess.CompletedProcess[str]:
            # Trusting only the origin's CA: only a connection the gateway did not decrypt succeeds.
            return subprocess.run(["curl", "-q", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                                   "--socks5", f"{proxy.host}:{proxy.port}", "--interface", source,
                                   "--cacert", str(origin.ca_cert_path), f"https://{name}:{port}/homework"],
                                  capture_output=True, text=True, timeout=20)  # fmt: skip

        assert fetch(PUPIL).stdout == "200"
        assert fetch(STAFF).returncode != 0
        row = rows(proxy, f"sni = '{name}' AND bytes_down IS NOT NULL")[-1]
        assert row["host"] == "127.0.0.1" and row["group_name"] == "pupil"
    finally:
        proxy.stop()


def set_clock(path: Path, text: str) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(path)


def test_a_rule_that_starts_with_a_lesson_intercepts_and_blocks_the_next_connection(tmp_path, origin):
    """A pass-through host is decided afresh at every connection: once a lesson starts that blocks it, the next
    connection gets the block page, not the origin."""
    clock = tmp_path / "clock"
    set_clock(clock, "2026-09-07T12:30")  # Monday lunch
    path = policy(tmp_path)
    lessons = ("  - {id: maths-games-in-lessons, groups: [pupil], periods: [lesson], domains: [maths-games.example],"
               " action: block, reason: Not in lessons.}\n")  # fmt: skip
    path.write_text(path.read_text().replace("rules:\n", "rules:\n" + lessons, 1))
    proxy = start_gateway(tmp_path, path, origin=origin, gateway_clock_file=str(clock))
    try:
        assert issuer(proxy, origin, f"{PUPIL_ONLY}:443", PUPIL_ONLY, PUPIL) == "origin"
        set_clock(clock, "2026-09-07T13:30")  # a lesson
        deadline = time.monotonic() + 10
        while (seen := issuer(proxy, origin, f"{PUPIL_ONLY}:443", PUPIL_ONLY, PUPIL)) != "gateway":
            assert time.monotonic() < deadline, f"still {seen} in lesson time"
            time.sleep(0.2)
        got = curl(f"https://{PUPIL_ONLY}/", proxy=proxy.proxy_url, ca=proxy.ca_cert_path, source_address=PUPIL,
                   headers={"Accept": "text/html"})  # fmt: skip
        assert got.status == 403 and "Not in lessons." in got.text
    finally:
        proxy.stop()
