"""Attempts to get round the filter through a real mitmdump with real clients: each is blocked, and the access-log
row of the attempt becomes an incident with its evidence (the writer records it from the row's `incident`).

Every upstream connection goes to a small DoH server on loopback (`doh_server.py`) that also serves ordinary pages:
nothing blocked may reach it. Each test uses its own device address, so its incidents are its own."""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import ssl
import struct
import time
from pathlib import Path

import pytest

from tests.circumvention.doh_server import ANSWER, DohServer
from tests.circumvention.session import browsing_session
from tests.circumvention.wire import dns_query, rcode
from tests.support.clients import curl, httpx_client, open_tunnel, ssl_context
from tests.support.gateway import start_gateway
from tests.support.mitmdump import Mitmdump
from tests.support.policies import demo_policy_with_devices

pytestmark = pytest.mark.e2e

STAFF = "127.0.3.1"
PAGE = {"Accept": "text/html", "Sec-Fetch-Dest": "document"}
DEADLINE = 20.0


def school_policy(folder: Path, extra: str = "", devices: dict[str, str] | None = None) -> Path:
    policy = demo_policy_with_devices(folder, {STAFF: "staff", **(devices or {})}, replace={
        "  ip_literal:\n    groups: [pupil]\n    allowed: []\n":
        "  ip_literal:\n    groups: [pupil]\n    allowed: [185.199.108.0/22]\n",
    }, extra=extra)  # fmt: skip
    return policy


@pytest.fixture(scope="module")
def doh():
    server = DohServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, doh):
    folder = tmp_path_factory.mktemp("circumvention")
    proxy = start_gateway(folder, school_policy(folder, "connections:\n  connect_ports: [443, 8443]\n"),
                          origin=doh.address, ssl_verify_upstream_trusted_ca=str(doh.ca.cert_path))  # fmt: skip
    yield proxy
    proxy.stop()


def incidents(proxy: Mitmdump, device: str, count: int = 1) -> list[sqlite3.Row]:
    """The incidents recorded for a device address, once the writer has written `count` of them."""
    deadline = time.monotonic() + DEADLINE
    while True:
        with sqlite3.connect(proxy.workdir / "gateway.db") as db:
            db.row_factory = sqlite3.Row
            found = db.execute("SELECT * FROM incident WHERE client_ip = ? ORDER BY id", (device,)).fetchall()
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def rows(proxy: Mitmdump, device: str, count: int) -> list[sqlite3.Row]:
    """The access log of a device, once the writer has written `count` rows of it."""
    deadline = time.monotonic() + DEADLINE
    while True:
        with sqlite3.connect(proxy.workdir / "gateway.db") as db:
            db.row_factory = sqlite3.Row
            found = db.execute("SELECT * FROM access_log WHERE client_ip = ? ORDER BY id", (device,)).fetchall()
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def the_incident(proxy: Mitmdump, device: str, technique: str) -> sqlite3.Row:
    """The device's incident of `technique`, waiting for it: a device's other incidents may be written first (a
    burst comes after the attempts that make it, in a later batch)."""
    deadline = time.monotonic() + DEADLINE
    while not (found := [i for i in incidents(proxy, device) if i["technique"] == technique]):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {technique} incident for {device}: "
                                 f"{[dict(i) for i in incidents(proxy, device, 0)]}")  # fmt: skip
        time.sleep(0.2)
    return found[0]


def source_row(proxy: Mitmdump, incident: sqlite3.Row) -> sqlite3.Row:
    with sqlite3.connect(proxy.workdir / "gateway.db") as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM access_log WHERE row_id = ?", (incident["source_row_id"],)).fetchone()


def tls(sock: socket.socket, server_hostname: str | None, ca: Path | None = None) -> ssl.SSLSocket:
    if ca is not None:
        return ssl_context(ca).wrap_socket(sock, server_hostname=server_hostname)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(sock, server_hostname=server_hostname)


def ask(conn: ssl.SSLSocket, host: str, path: str = "/") -> bytes:
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\nConnection: close\r\n\r\n".encode())
    answer = b""
    while chunk := conn.recv(65536):
        answer += chunk
    return answer


# -- DNS over HTTPS ------------------------------------------------------------------------------------------
def test_the_doh_server_answers_real_queries_when_asked_directly(doh):
    """The control: without the gateway, the same clients get answers, so what the gateway blocks is real DoH."""
    with httpx_client(proxy=None, ca=doh.ca.cert_path) as client:
        answer = client.post(f"https://localhost:{doh.address.split(':')[1]}/dns-query", content=dns_query("www.tiktok.com"),
                             headers={"Content-Type": "application/dns-message", "Accept": "application/dns-message"})  # fmt: skip
    assert answer.status_code == 200 and answer.content.endswith(bytes(int(p) for p in ANSWER.split(".")))


def test_a_real_doh_query_to_an_unlisted_host_is_blocked_and_recorded(gateway, doh):
    device = "127.0.4.1"
    before = doh.queries
    query = dns_query("www.tiktok.com")
    with httpx_client(proxy=gateway.proxy_url, ca=gateway.ca_cert_path, source_address=device) as client:
        posted = client.post("https://doh.unlisted-resolver.example/dns-query", content=query,
                             headers={"Content-Type": "application/dns-message", "Accept": "application/dns-message"})  # fmt: skip
        wire = base64.urlsafe_b64encode(query).rstrip(b"=").decode()
        got = client.get(f"https://another-resolver.example/q?dns={wire}", headers={"Accept": "*/*"})
    assert posted.status_code == 403 and got.status_code == 403
    assert doh.queries == before and not [s for s in doh.seen if "resolver.example" in s[1]]
    incident = the_incident(gateway, device, "doh")
    assert incident["detector"] == "doh-content-type" and incident["confidence"] == "high"
    assert incident["host"] == "doh.unlisted-resolver.example" and incident["hits"] >= 1
    row = source_row(gateway, incident)
    assert row["action"] == "block" and row["source"] == "circumvention" and row["host"] == "doh.unlisted-resolver.example"


def test_json_doh_is_blocked(gateway, doh):
    device = "127.0.4.2"
    got = curl("https://dns.unlisted.example/resolve?name=www.tiktok.com&type=A", proxy=gateway.proxy_url,
               ca=gateway.ca_cert_path, source_address=device, headers={"Accept": "application/dns-json"})  # fmt: skip
    assert got.status == 403 and b"192.0.2.53" not in got.body
    assert the_incident(gateway, device, "doh")["detector"] == "doh-json"


# -- bare addresses --------------------------------------------------------------------------------------------
def test_connect_to_loopback_by_address_is_refused_and_recorded_for_a_pupil(gateway):
    device = "127.0.4.3"
    status, sock = open_tunnel(gateway.proxy_url, "127.0.0.1:443", source_address=device)
    sock.close()
    assert " 403" in status
    incident = the_incident(gateway, device, "ip_literal")
    assert incident["detector"] == "connect-address" and json.loads(incident["evidence"])["address"] == "127.0.0.1"
    assert source_row(gateway, incident)["rule"] == "internal-address"


def test_connect_to_a_public_address_is_blocked_for_pupils_not_staff(gateway, doh):
    device = "127.0.4.4"
    status, sock = open_tunnel(gateway.proxy_url, "93.184.216.34:443", source_address=device)
    assert " 200" in status  # answered by the gateway, so the block page shows inside
    with tls(sock, None) as conn:
        answer = ask(conn, "93.184.216.34")
    assert answer.startswith(b"HTTP/1.1 403") and b"way round the school" in answer
    assert not [s for s in doh.seen if s[1].startswith("93.184.216.34")]
    assert the_incident(gateway, device, "ip_literal")["confidence"] == "medium"
    # Staff are not kept from addresses: connected (here, to the test server), no incident.
    status, sock = open_tunnel(gateway.proxy_url, "93.184.216.34:443", source_address=STAFF)
    assert " 200" in status
    with tls(sock, None) as conn:
        assert ask(conn, "93.184.216.34").startswith(b"HTTP/1.1 200")
    # An address the policy allows is open to pupils too.
    status, sock = open_tunnel(gateway.proxy_url, "185.199.108.153:443", source_address="127.0.4.5")
    assert " 200" in status
    with tls(sock, None) as conn:
        assert ask(conn, "185.199.108.153").startswith(b"HTTP/1.1 200")
    assert incidents(gateway, STAFF, 0) == [] and incidents(gateway, "127.0.4.5", 0) == []


def raw_request(proxy: Mitmdump, host: str, source: str) -> bytes:
    """A request line as a script or app writes it, the host exactly as given (curl and browsers rewrite it)."""
    with socket.create_connection((proxy.host, proxy.port), timeout=10, source_address=(source, 0)) as sock:
        sock.sendall(f"GET http://{host}/ HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\n"
                     "Connection: close\r\n\r\n".encode())  # fmt: skip
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("device, spelling, form", [("127.0.4.6", "1572395042", "decimal"),
                                                    ("127.0.4.7", "0x5db8d822", "hex"),
                                                    ("127.0.4.8", "0135.0270.0330.042", "octal"),
                                                    ("127.0.4.9", "93.184.55330", "short"),
                                                    ("127.0.4.10", "[::ffff:5db8:d822]", "ipv4-mapped")])
def test_other_spellings_of_an_address_are_that_address(gateway, doh, device, spelling, form):
    answer = raw_request(gateway, spelling, device)
    assert answer.startswith(b"HTTP/1.1 403") and b"way round the school" in answer
    incident = the_incident(gateway, device, "ip_literal")
    evidence = json.loads(incident["evidence"])
    assert evidence["address"] == "93.184.216.34" and evidence["form"] == form and incident["confidence"] == "high"
    # curl reads the spelling as browsers do and asks for the address: blocked the same; staff reach it.
    assert curl(f"http://{spelling}/", proxy=gateway.proxy_url, source_address=device).status == 403
    assert curl(f"http://{spelling}/", proxy=gateway.proxy_url, source_address=STAFF).status == 200


# -- TLS that hides the site, tunnels, fronting ---------------------------------------------------------------
def test_a_client_hello_without_a_server_name_is_blocked_and_recorded(gateway, doh):
    device = "127.0.4.11"
    status, sock = open_tunnel(gateway.proxy_url, "www.bbc.co.uk:443", source_address=device)
    assert " 200" in status
    with tls(sock, None) as conn:
        answer = ask(conn, "www.bbc.co.uk", "/no-sni")
    assert answer.startswith(b"HTTP/1.1 403")
    assert not [s for s in doh.seen if s[2] == "/no-sni"]
    incident = the_incident(gateway, device, "no_sni")
    assert incident["detector"] == "tls-no-sni" and incident["host"] == "www.bbc.co.uk"
    assert source_row(gateway, incident)["method"] == "CONNECT"


def test_bytes_that_are_not_tls_on_a_tls_port_are_recorded_with_the_first_bytes(gateway):
    device = "127.0.4.12"
    status, sock = open_tunnel(gateway.proxy_url, "www.bbc.co.uk:443", source_address=device)
    assert " 200" in status
    sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
    try:
        assert sock.recv(4096) == b""
    except ConnectionResetError:
        pass
    sock.close()
    incident = the_incident(gateway, device, "non_tls_tunnel")
    assert incident["first_bytes"] == "SSH-2.0-OpenSSH_9.6\\x0d\\x0a" and incident["confidence"] == "high"
    assert json.loads(incident["evidence"])["looks_like"] == "ssh"
    assert source_row(gateway, incident)["rule"] == "raw-tunnel"


def test_a_host_header_for_another_site_than_the_tls_name_is_fronting(gateway, doh):
    device = "127.0.4.13"
    status, sock = open_tunnel(gateway.proxy_url, "www.bbc.co.uk:443", source_address=device)
    with tls(sock, "www.bbc.co.uk", gateway.ca_cert_path) as conn:
        answer = ask(conn, "hidden.unlisted-front.example", "/fronted")
    assert answer.startswith(b"HTTP/1.1 403")
    assert not [s for s in doh.seen if s[2] == "/fronted"]
    incident = the_incident(gateway, device, "domain_fronting")
    assert incident["sni"] == "www.bbc.co.uk" and incident["detector"] == "sni-host-mismatch"
    # A TLS name for another site than the CONNECT target, too.
    device = "127.0.4.14"
    status, sock = open_tunnel(gateway.proxy_url, "www.bbc.co.uk:443", source_address=device)
    with tls(sock, "cdn.unlisted-front.example", gateway.ca_cert_path) as conn:
        assert ask(conn, "cdn.unlisted-front.example").startswith(b"HTTP/1.1 403")
    assert the_incident(gateway, device, "domain_fronting")["detector"] == "connect-sni-mismatch"


# -- services and clients --------------------------------------------------------------------------------------
def test_a_vpn_list_domain_is_an_attempt_over_http_and_at_connect(gateway):
    device = "127.0.4.15"
    assert curl("http://nordvpn.com/", proxy=gateway.proxy_url, source_address=device, headers=PAGE).status == 403
    incident = the_incident(gateway, device, "workaround_site")
    assert incident["host"] == "nordvpn.com" and json.loads(incident["evidence"])["list"] == "proxies_vpn_doh"
    # A VPN app that pins its certificate never sends a request: the CONNECT is the attempt.
    device = "127.0.4.16"
    status, sock = open_tunnel(gateway.proxy_url, "api.nordvpn.com:443", source_address=device)
    sock.close()
    incident = the_incident(gateway, device, "workaround_site")
    assert source_row(gateway, incident)["method"] == "CONNECT"


def test_a_vpn_client_user_agent_is_blocked_for_everyone(gateway, doh):
    with httpx_client(proxy=gateway.proxy_url, ca=gateway.ca_cert_path, source_address=STAFF) as client:
        got = client.get("https://api.unlisted-service.example/v1/servers", headers={"User-Agent": "NordVPN/6.14.2 (Windows)"})
    assert got.status_code == 403
    incident = the_incident(gateway, STAFF, "vpn_client")
    assert incident["user_agent"] == "NordVPN/6.14.2 (Windows)" and incident["group_name"] == "staff"


def test_a_burst_of_workaround_sites_is_one_burst(gateway):
    device = "127.0.4.17"
    sites = ["kproxy.com", "hidester.com", "proxysite.com", "croxyproxy.com", "blockaway.net"]
    for site in sites:
        assert curl(f"http://www.{site}/", proxy=gateway.proxy_url, source_address=device).status == 403
    burst = the_incident(gateway, device, "burst")
    assert json.loads(burst["evidence"])["sites"] == sites


# -- SOCKS5: the destination comes with the connection ---------------------------------------------------------
@pytest.fixture(scope="module")
def socks(tmp_path_factory, doh):
    folder = tmp_path_factory.mktemp("socks")
    proxy = start_gateway(folder, school_policy(folder), origin=doh.address, extra_args=["--mode", "socks5"],
                          ssl_verify_upstream_trusted_ca=str(doh.ca.cert_path))  # fmt: skip
    yield proxy
    proxy.stop()


def socks5(proxy: Mitmdump, address: str, port: int, source: str) -> socket.socket:
    """A SOCKS5 connection to an address (no name: as a client that resolved it itself)."""
    sock = socket.create_connection((proxy.host, proxy.port), timeout=10, source_address=(source, 0))
    sock.sendall(b"\x05\x01\x00")
    assert sock.recv(2) == b"\x05\x00"
    sock.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(address) + struct.pack(">H", port))
    reply = sock.recv(10)
    assert reply[:2] == b"\x05\x00", reply
    return sock


def test_socks_tls_without_a_name_to_an_address_is_blocked_for_pupils(socks, doh):
    """In SOCKS mode the client connects to an address; with no name in the TLS hello the address is all there is.
    (Here every upstream connection is routed to the test server, so the hello is judged on that reachable address,
    and it is the request inside, asking for the bare address, that is caught.)"""
    device = "127.0.4.18"
    with tls(socks5(socks, "93.184.216.34", 443, device), None) as conn:
        answer = ask(conn, "93.184.216.34", "/socks-no-sni")
    assert answer.startswith(b"HTTP/1.1 403")
    assert not [s for s in doh.seen if s[2] == "/socks-no-sni"]
    assert the_incident(socks, device, "ip_literal")["host"] == "93.184.216.34"
    # With a name in the hello the address is only where the name lives: decided by the name.
    with tls(socks5(socks, "93.184.216.34", 443, "127.0.4.19"), "www.bbc.co.uk", socks.ca_cert_path) as conn:
        assert ask(conn, "www.bbc.co.uk", "/socks-named").startswith(b"HTTP/1.1 200")
    assert incidents(socks, "127.0.4.19", 0) == []


# -- the browsers' own switches --------------------------------------------------------------------------------
def test_dns_mode_answers_the_canaries_with_no_such_name(tmp_path):
    proxy = start_gateway(tmp_path, school_policy(tmp_path), extra_args=["--mode", "dns@127.0.0.1:0"])
    try:
        def lookup(name: str) -> bytes:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.settimeout(10)
                udp.sendto(dns_query(name), (proxy.host, proxy.port))
                return udp.recv(4096)

        for canary in ("use-application-dns.net", "mask.icloud.com", "mask-h2.icloud.com", "MASK.iCloud.com"):
            assert rcode(lookup(canary)) == 3, canary  # NXDOMAIN
        assert rcode(lookup("localhost")) == 0
    finally:
        proxy.stop()


# -- no false positives -------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", ["127.0.4.20", STAFF])
def test_a_normal_browsing_session_fires_no_detector(gateway, device):
    session = len(browsing_session())
    before = len(rows(gateway, device, 0))
    with httpx_client(proxy=gateway.proxy_url, ca=gateway.ca_cert_path, source_address=device) as client:
        for request in browsing_session():
            got = client.request(request["method"], request["url"], headers=request["headers"],
                                 content=b"{}" if request["method"] == "POST" else None)  # fmt: skip
            assert got.status_code in (200, 204), (request["note"], got.status_code, got.text[:300])
    logged = [r for r in rows(gateway, device, before + session)[before:] if r["method"] != "CONNECT"]
    assert len(logged) == session
    assert not [(r["host"], r["path"], r["rule"]) for r in logged if r["source"] == "circumvention"]
    # The incidents are written with the rows: none of this session's rows made one.
    made = {i["source_row_id"] for i in incidents(gateway, device, 0)}
    assert not [r["host"] for r in logged if r["row_id"] in made]
