"""Every connection is decided, not only the requests in it: CONNECT targets and ports, the TLS server name,
bytes that are not TLS, pass-through of never-intercept hosts, and the gateway's own and internal addresses in
every spelling. A real mitmdump with addons/gateway.py, real TLS clients and a real origin on loopback."""

from __future__ import annotations

import socket
import sqlite3
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.clients import curl, httpx_client, open_tunnel, ssl_context
from tests.support.gateway import start_gateway
from tests.support.mitmdump import Mitmdump
from tests.support.origins import OriginServer
from tests.support.policies import demo_policy_with_devices

pytestmark = pytest.mark.e2e

PUPIL = "127.0.0.2"
PAGE = {"Accept": "text/html", "Sec-Fetch-Dest": "document"}


def policy_copy(folder: Path, extra: str = "", bank: str = "") -> Path:
    """The demo policy with a host on both the illegal slot and the never-intercept list (illegal must win), and
    `bank`, a never-intercept host whose name must resolve here (SOCKS5 tests use this machine's name)."""
    banks = ", ".join(filter(None, ["illegal-content.test", bank]))
    return demo_policy_with_devices(folder, {}, extra=extra, replace={
        "never_intercept:\n  lists: [never_intercept]\n": f"never_intercept:\n  lists: [never_intercept]\n  domains: [{banks}]\n",
    })  # fmt: skip


def start(folder: Path, origin: OriginServer | None, **options: object) -> Mitmdump:
    return start_gateway(folder, policy_copy(folder), origin=origin, **options)


@pytest.fixture(scope="module")
def routed(tmp_path_factory, origin):
    """A gateway whose upstream connections all go to the test origin."""
    proxy = start(tmp_path_factory.mktemp("routed"), origin)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def unrouted(tmp_path_factory):
    """A gateway that connects where it is asked: for the internal-address tests."""
    proxy = start(tmp_path_factory.mktemp("unrouted"), None)
    yield proxy
    proxy.stop()


def rows(proxy: Mitmdump, where: str = "1=1") -> list[sqlite3.Row]:
    """The access log, once the writer has had time to write (it batches every half second)."""
    deadline = time.monotonic() + 5
    db = proxy.workdir / "gateway.db"
    while True:
        with sqlite3.connect(db) as connection:
            connection.row_factory = sqlite3.Row
            found = connection.execute(f"SELECT * FROM access_log WHERE {where} ORDER BY id").fetchall()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def connect(proxy: Mitmdump, target: str, source: str = PUPIL) -> tuple[str, socket.socket]:
    return open_tunnel(proxy.proxy_url, target, source_address=source)


def closed_without_reply(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096) == b""
    except (ConnectionResetError, TimeoutError):
        return True


# -- CONNECT -------------------------------------------------------------------------------------------------
def test_a_connect_to_a_port_the_policy_does_not_name_is_refused_and_logged(routed, origin):
    origin.clear()
    status, sock = connect(routed, "www.bbc.co.uk:22")
    sock.close()
    assert " 403" in status
    assert not origin.seen()
    logged = rows(routed, "method = 'CONNECT' AND port = 22")
    assert logged and logged[-1]["action"] == "block" and logged[-1]["rule"] == "connect-port"


def test_bytes_that_are_not_tls_are_not_relayed(routed, origin):
    """An SSH or OpenVPN client through an allowed CONNECT gets its connection closed, and the attempt logged."""
    status, sock = connect(routed, "www.bbc.co.uk:443")
    assert " 200" in status
    sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
    assert closed_without_reply(sock)
    sock.close()
    logged = rows(routed, "rule = 'raw-tunnel'")
    assert logged and logged[-1]["host"] == "www.bbc.co.uk" and logged[-1]["client_ip"] == PUPIL


def test_a_blocked_connect_target_is_never_contacted_and_its_tls_shows_the_block_page(routed, origin):
    origin.clear()
    with httpx_client(proxy=routed.proxy_url, ca=routed.ca_cert_path, source_address=PUPIL) as client:
        got = client.get("https://www.facebook.com/", headers=PAGE)
    assert got.status_code == 403 and "This page is blocked" in got.text
    assert not origin.seen()
    assert "server connect" not in routed.output().split("CONNECT www.facebook.com")[-1].split("client disconnect")[0]


def test_a_mismatched_server_name_is_intercepted_not_passed_through(routed, origin):
    """CONNECT www.facebook.com with a ClientHello for never-intercept www.nhs.uk: the gateway's certificate, a
    block page, nothing relayed to Facebook."""
    origin.clear()
    status, sock = connect(routed, "www.facebook.com:443")
    assert " 200" in status
    context = ssl_context(routed.ca_cert_path)  # verifies against the gateway's CA: intercepted
    with context.wrap_socket(sock, server_hostname="www.nhs.uk") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: www.nhs.uk\r\nAccept: text/html\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 403") and b"This page is blocked" in answer
    assert not origin.seen()


def test_a_never_intercept_host_passes_through_untouched_and_is_logged_with_bytes(routed, origin):
    origin.clear()
    status, sock = connect(routed, "www.nhs.uk:443")
    assert " 200" in status
    # The origin's own certificate, verified against the origin's CA: the gateway did not intercept.
    context = ssl_context(origin.ca_cert_path)
    with context.wrap_socket(sock, server_hostname="www.nhs.uk") as tls:
        tls.sendall(b"GET /health HTTP/1.1\r\nHost: www.nhs.uk\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    assert b"origin ok: www.nhs.uk/health" in answer
    logged = rows(routed, "method = 'CONNECT' AND host = 'www.nhs.uk' AND bytes_down IS NOT NULL")
    assert logged, "the pass-through connection was not logged"
    row = logged[-1]
    assert row["sni"] == "www.nhs.uk" and row["action"] == "allow" and row["client_ip"] == PUPIL
    assert row["bytes_up"] > 100 and row["bytes_down"] > len(answer) and row["duration_ms"] is not None


def test_an_illegal_host_on_the_never_intercept_list_is_blocked_not_passed_through(routed, origin):
    origin.clear()
    status, sock = connect(routed, "illegal-content.test:443")
    sock.close()
    with httpx_client(proxy=routed.proxy_url, ca=routed.ca_cert_path, source_address=PUPIL) as client:
        got = client.get("https://illegal-content.test/", headers=PAGE)
    assert got.status_code == 403 and "illegal-content list" in got.text
    assert not origin.seen()


def test_the_strictest_name_wins_and_the_destination_is_what_is_logged(routed, origin):
    """An allowed destination with a blocked Host header is blocked; the log names the destination decided."""
    for spelling in ("www.facebook.com", "WWW.FACEBOOK.COM.", "www.facebook.com:80"):
        got = curl("http://www.bbc.co.uk/news", proxy=routed.proxy_url, source_address=PUPIL,
                   headers={"Host": spelling})  # fmt: skip
        assert got.status == 403, spelling
    status, sock = connect(routed, "WWW.FaceBook.COM.:443")
    sock.close()
    assert " 200" in status  # answered by the gateway itself, to show the block page inside
    assert rows(routed, "method = 'CONNECT' AND host = 'www.facebook.com'")[-1]["action"] == "block"
    got = curl("http://www.example.org/page", proxy=routed.proxy_url, source_address=PUPIL,
               headers={"Host": "www.bbc.co.uk"})  # fmt: skip
    assert got.status == 200
    logged = rows(routed, "path = '/page'")
    assert logged[-1]["host"] == "www.example.org" and logged[-1]["port"] == 80


def test_http2_and_websocket_upgrades_are_decided_like_http1(routed, origin):
    def h2(url: str) -> str:
        run = subprocess.run(["curl", "-q", "-sS", "--http2", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                              "--proxy", routed.proxy_url, "--cacert", str(routed.ca_cert_path),
                              "--interface", PUPIL, url], capture_output=True, text=True, timeout=20)  # fmt: skip
        return run.stdout

    assert h2("https://www.instagram.com/") == "403 2"
    # The origin speaks HTTP/1.1 only, so mitmproxy offers the client what the server has.
    assert h2("https://www.bbc.co.uk/h2").startswith("200 ")
    upgrade_headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                       "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
    got = curl("https://www.facebook.com/ws", proxy=routed.proxy_url, ca=routed.ca_cert_path,
               source_address=PUPIL, headers=upgrade_headers)  # fmt: skip
    assert got.status == 403


# -- the gateway's own services and the school's internals ---------------------------------------------------
CONSOLE_SPELLINGS = ["127.0.0.1", "localhost", "127.1", "0x7f.1", "2130706433", "[::ffff:127.0.0.1]", "0177.0.0.1",
                     "LOCALHOST.", "vm.localhost"]  # fmt: skip


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    """Something listening on loopback that must stay out of reach: stands in for the console."""
    with OriginServer() as server:
        yield server


@pytest.mark.parametrize("spelling", CONSOLE_SPELLINGS)
def test_loopback_in_every_spelling_is_refused(unrouted, console, spelling):
    console.clear()
    got = curl(f"http://{spelling}:{console.port}/logs", proxy=unrouted.proxy_url, source_address=PUPIL)
    assert got.status == 403
    assert "internal network" in got.text or "blocked" in got.text.lower()
    assert not console.seen()


@pytest.mark.parametrize("target", ["127.0.0.1:5432", "localhost:5432", "[::1]:443", "127.0.0.1:443", "10.20.0.5:443",
                                    "0x7f.1:443", "2130706433:443", "[::ffff:127.0.0.1]:443", "LocalHost.:443",
                                    "169.254.169.254:443"])
def test_connect_to_internal_addresses_is_refused(unrouted, target):
    status, sock = connect(unrouted, target)
    sock.close()
    assert " 403" in status


def test_link_local_metadata_address_is_refused(unrouted):
    got = curl("http://169.254.169.254/latest/meta-data/", proxy=unrouted.proxy_url, source_address=PUPIL)
    assert got.status == 403
    assert rows(unrouted, "host = '169.254.169.254'")[-1]["rule"] == "internal-address"


def test_a_name_that_resolves_to_loopback_is_refused_after_resolution(unrouted, console):
    """`vm` (this machine's name) resolves to 127.0.0.1 through /etc/hosts: refused once resolved."""
    name = socket.gethostname()
    if not any(info[4][0].startswith("127.") for info in socket.getaddrinfo(name, 80)):
        pytest.skip(f"{name} does not resolve to loopback here")
    console.clear()
    got = curl(f"http://{name}:{console.port}/", proxy=unrouted.proxy_url, source_address=PUPIL)
    assert got.status in (502, 403)
    assert not console.seen()
    unrouted.wait_for_output(rf"refused a connection from {PUPIL} to {name}: it resolves to internal 127\.")


def test_a_forged_client_address_header_never_reaches_a_site(routed, origin):
    origin.clear()
    got = curl("http://www.bbc.co.uk/whoami", proxy=routed.proxy_url, source_address=PUPIL,
               headers={"X-Gateway-Client-IP": "127.0.0.9"})  # fmt: skip
    assert got.status == 200
    seen = origin.seen(path="/whoami")
    assert seen and "x-gateway-client-ip" not in seen[-1].headers


def test_the_portal_gets_the_real_client_address_not_a_forged_one(tmp_path):
    with OriginServer() as portal:
        proxy = start(tmp_path, None, gateway_portal_url=f"http://127.0.0.1:{portal.port}")
        try:
            got = curl(f"http://127.0.0.1:{portal.port}/portal/sign-in", proxy=proxy.proxy_url,
                       source_address=PUPIL, headers={"X-Gateway-Client-IP": "127.0.0.9"})  # fmt: skip
            assert got.status == 200
            assert portal.seen()[-1].headers["x-gateway-client-ip"] == PUPIL
            # Another spelling of the console is not the portal: refused.
            assert curl(f"http://localhost:{portal.port}/", proxy=proxy.proxy_url, source_address=PUPIL).status == 403
            # With no request form in the policy, the block page asks for access at the gateway's own form.
            page = curl("http://www.tiktok.com/", proxy=proxy.proxy_url, source_address=PUPIL, headers=PAGE).text
            assert f'href="http://127.0.0.1:{portal.port}/request?url=http' in page
        finally:
            proxy.stop()


def test_tls_to_an_unknown_port_on_an_allowed_host_needs_the_policy(routed):
    status, sock = connect(routed, "www.bbc.co.uk:8443")
    sock.close()
    assert " 403" in status


def test_https_keeps_working_over_one_keep_alive_tunnel(routed, origin):
    with httpx_client(proxy=routed.proxy_url, ca=routed.ca_cert_path, source_address=PUPIL) as client:
        answers = [client.get(f"https://www.bbc.co.uk/{i}") for i in range(5)]
    assert [a.status_code for a in answers] == [200] * 5


def test_certificate_for_a_blocked_site_comes_from_the_gateway(routed):
    """The client sees the gateway's CA for a blocked site (so it can read the block page)."""
    status, sock = connect(routed, "www.facebook.com:443")
    with ssl_context(routed.ca_cert_path).wrap_socket(sock, server_hostname="www.facebook.com") as tls:
        assert tls.version() is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        status, sock = connect(routed, "www.facebook.com:443")
        ssl.create_default_context().wrap_socket(sock, server_hostname="www.facebook.com")


def test_a_name_for_a_reachable_internal_service_connects_to_the_address_checked(tmp_path, console):
    """The school lets clients reach one internal service: its name resolves, is checked, and the connection goes to
    the address that was checked; mitmproxy still reuses the connection for that name."""
    name = socket.gethostname()
    if not any(info[4][0] == "127.0.0.1" for info in socket.getaddrinfo(name, 80)):
        pytest.skip(f"{name} does not resolve to 127.0.0.1 here")
    proxy = start(tmp_path, None, gateway_reachable_internal=[f"127.0.0.1:{console.port}"])
    try:
        console.clear()
        with httpx_client(proxy=proxy.proxy_url, source_address=PUPIL) as client:
            answers = [client.get(f"http://{name}:{console.port}/intranet/{i}") for i in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert [s.path for s in console.seen()] == ["/intranet/0", "/intranet/1", "/intranet/2"]
        assert proxy.output().count("server connect") == 1
        # Another port on the same address is still out of reach.
        assert curl(f"http://{name}:1/", proxy=proxy.proxy_url, source_address=PUPIL).status in (403, 502)
    finally:
        proxy.stop()


def test_a_tunnel_to_a_reachable_internal_name_keeps_the_name_for_its_requests(tmp_path, origin):
    """CONNECT to a name the gateway resolved and checked: the requests in the tunnel are decided and logged by
    that name, not by the address it was pinned to."""
    name = socket.gethostname()
    if not any(info[4][0] == "127.0.0.1" for info in socket.getaddrinfo(name, 80)):
        pytest.skip(f"{name} does not resolve to 127.0.0.1 here")
    policy = policy_copy(tmp_path, f"connections:\n  connect_ports: [443, {origin.port}]\n")
    proxy = start_gateway(tmp_path, policy, gateway_reachable_internal=[f"127.0.0.1:{origin.port}"],
                          ssl_verify_upstream_trusted_ca=str(origin.ca_cert_path))  # fmt: skip
    try:
        origin.clear()
        with httpx_client(proxy=proxy.proxy_url, ca=proxy.ca_cert_path, source_address=PUPIL) as client:
            got = client.get(f"https://{name}:{origin.port}/tunnelled")
        assert got.status_code == 200 and origin.seen(path="/tunnelled")[-1].sni == name
        row = rows(proxy, "path = '/tunnelled'")[-1]
        assert row["host"] == name and row["port"] == origin.port
    finally:
        proxy.stop()


# -- modes where the destination comes with the connection (SOCKS5 here; transparent mode decides the same way) --
@pytest.fixture(scope="module")
def socks(tmp_path_factory, origin):
    folder = tmp_path_factory.mktemp("socks")
    proxy = start_gateway(folder, policy_copy(folder, bank=socket.gethostname()), extra_args=["--mode", "socks5"],
                          gateway_reachable_internal=[origin.address],
                          ssl_verify_upstream_trusted_ca=str(origin.ca_cert_path))  # fmt: skip
    yield proxy
    proxy.stop()


def socks_curl(proxy: Mitmdump, url: str, *extra: str, by_name: bool = True) -> subprocess.CompletedProcess[str]:
    """curl through SOCKS5, handing the proxy the name (`by_name`) or an address it resolved itself."""
    how = "--socks5-hostname" if by_name else "--socks5"
    return subprocess.run(["curl", "-q", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                           how, f"{proxy.host}:{proxy.port}", "--interface", PUPIL,
                           "--cacert", str(proxy.ca_cert_path), *extra, url],
                          capture_output=True, text=True, timeout=20)  # fmt: skip


def test_socks_destination_is_decided_before_anything_is_contacted(socks, origin):
    origin.clear()
    blocked = socks_curl(socks, "https://www.facebook.com/")
    assert blocked.returncode != 0 and not origin.seen()
    assert rows(socks, "host = 'www.facebook.com' AND method = 'CONNECT'")[-1]["rule"] == "social-media-named"
    internal = socks_curl(socks, "http://127.0.0.1:5432/")
    assert internal.returncode != 0
    assert rows(socks, "host = '127.0.0.1' AND port = 5432")[-1]["rule"] == "internal-address"


def test_socks_tls_with_a_blocked_server_name_gets_the_block_page(socks, origin):
    """An allowed destination address, a blocked name in the ClientHello: intercepted, never relayed."""
    origin.clear()
    host, port = origin.address.split(":")
    got = socks_curl(socks, f"https://www.facebook.com:{port}/", "--connect-to", f"www.facebook.com:{port}:{host}:{port}",
                     by_name=False)  # fmt: skip
    assert got.stdout == "403"
    assert not origin.seen()


def test_socks_tls_to_a_never_intercept_name_that_resolves_to_the_destination_passes_through(socks, origin):
    name = socket.gethostname()
    if not any(info[4][0] == "127.0.0.1" for info in socket.getaddrinfo(name, 80)):
        pytest.skip(f"{name} does not resolve to 127.0.0.1 here")
    origin.clear()
    port = origin.address.split(":")[1]
    # Verified against the origin's own CA: the gateway did not intercept.
    got = subprocess.run(["curl", "-q", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                          "--socks5", f"{socks.host}:{socks.port}", "--interface", PUPIL,
                          "--cacert", str(origin.ca_cert_path), f"https://{name}:{port}/bank"],
                         capture_output=True, text=True, timeout=20)  # fmt: skip
    assert got.stdout == "200", got.stderr
    row = rows(socks, f"method = 'CONNECT' AND sni = '{name}' AND bytes_down IS NOT NULL")[-1]
    assert row["host"] == "127.0.0.1" and row["bytes_down"] > 0


def test_bytes_that_are_not_tls_reach_a_host_the_policy_names_and_are_logged(tmp_path, origin):
    policy = policy_copy(tmp_path, "connections:\n  raw_tunnel_domains: [ssh.school-partner.example]\n")
    proxy = start_gateway(tmp_path, policy, origin=origin)
    try:
        status, sock = connect(proxy, "ssh.school-partner.example:443")
        assert " 200" in status
        banner = b"SSH-2.0-OpenSSH_9.6\r\n"
        sock.sendall(banner)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        sock.close()
        # The test origin is a web server: it answers the SSH greeting with 400, proving the bytes reached it.
        assert b"400 - Bad request syntax" in answer
        row = rows(proxy, "method = 'CONNECT' AND host = 'ssh.school-partner.example' AND bytes_up IS NOT NULL")[-1]
        assert row["bytes_up"] == len(banner) and row["bytes_down"] == len(answer) and row["action"] == "allow"
        # Another host gets its raw bytes refused.
        status, sock = connect(proxy, "www.bbc.co.uk:443")
        sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        assert closed_without_reply(sock)
        sock.close()
    finally:
        proxy.stop()
