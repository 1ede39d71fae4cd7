"""Transparent mode end to end, in network namespaces the test makes: a pupil's device with no proxy settings, routed
through a gateway whose nftables rules (printed by `gateway deploy nftables`) send its web traffic to mitmdump in
transparent mode. The device is filtered (block page, or the origin's page), known by its address (its network's
group), logged with that address, over HTTP and HTTPS; its QUIC is dropped; and with the redirect gone its web traffic
is dropped, not routed around the proxy (fail closed)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store.migrate import upgrade
from tests.support.gateway import GATEWAY_SCRIPT, MONDAY_LESSON
from tests.support.mitmdump import Mitmdump
from tests.support.netns import CLIENT_IP, DECOY_IP, GATEWAY_LAN_IP, ORIGIN_IP, NamespacedOrigin, RoutedNetwork, unavailable
from tests.support.policies import write_policy

pytestmark = pytest.mark.e2e

RULES = """\
rules:
  - {id: no-social, groups: [pupil], domains: [facebook.com], action: block, reason: Social media is not allowed}
"""

# The internet's names, as the gateway's resolver knows them: every one is the origin.
SITES = ["www.bbc.co.uk", "www.facebook.com", "m.facebook.com"]


@pytest.fixture(scope="module")
def network() -> Iterator[RoutedNetwork]:
    why = unavailable()
    if why:
        pytest.skip(f"transparent-mode test needs network namespaces: {why}")
    with RoutedNetwork() as made:
        yield made


@pytest.fixture(scope="module")
def school(network: RoutedNetwork, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mitmdump, NamespacedOrigin, Path]]:
    folder = tmp_path_factory.mktemp("transparent")
    network.resolve_in_gateway(SITES, ORIGIN_IP)
    origin = NamespacedOrigin(network, folder / "origin-ca")
    policy = write_policy(folder, RULES)
    db = folder / "gateway.db"
    upgrade(f"sqlite:///{db}")
    proxy = Mitmdump(
        [GATEWAY_SCRIPT],
        {"gateway_policy": policy, "gateway_now": MONDAY_LESSON, "gateway_db": f"sqlite:///{db}",
         "gateway_spool": folder / "spool", "ssl_verify_upstream_trusted_ca": origin.ca_cert_path,
         # The internet is on documentation addresses, which the gateway otherwise counts as internal.
         "gateway_reachable_internal": [ORIGIN_IP, DECOY_IP]},
        workdir=folder, listen_hosts=(GATEWAY_LAN_IP,), extra_args=["--mode", "transparent"],
        ready_line=r"policy .* loaded",
    )  # fmt: skip
    proxy.command[:0] = ["ip", "netns", "exec", network.gateway]
    try:
        proxy.start()
        rules = subprocess.run(
            [sys.executable, "-m", "gateway", "deploy", "nftables", "--policy", str(policy), "--proxy-port",
             str(proxy.port), "--allow-egress", "udp/4433"], capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        (folder / "rules.nft").write_text(rules)
        network.run(network.gateway, "nft", "-f", str(folder / "rules.nft"))
        yield proxy, origin, db
    finally:
        proxy.stop()
        origin.stop()


def curl(network: RoutedNetwork, url: str, *extra: str, address: str = ORIGIN_IP) -> tuple[int, str]:
    """curl on the client, with no proxy settings; the name resolves to `address` (the origin's, as DNS would)."""
    port = 443 if url.startswith("https:") else 80
    host = url.split("/")[2]
    done = network.run(network.client, "curl", "-sS", "--noproxy", "*", "--max-time", "30", "--resolve",
                       f"{host}:{port}:{address}", "-w", "\n%{http_code}", *extra, url, check=False)  # fmt: skip
    body, _, code = done.stdout.rpartition("\n")
    return int(code or 0), body + done.stderr


def logged(db: Path, host: str, timeout: float = 30) -> list[tuple[str, str, str, str]]:
    """The access-log rows for `host` (client address, group, action, scheme), once the writer has written one."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT client_ip, group_name, action, scheme FROM access_log WHERE host = ?",
                                (host,)).fetchall()  # fmt: skip
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_an_allowed_site_over_http_reaches_the_origin_and_is_logged_with_the_device_address(network, school):
    proxy, origin, db = school
    code, body = curl(network, "http://www.bbc.co.uk/bitesize")
    assert (code, body) == (200, "origin ok: www.bbc.co.uk/bitesize")
    assert logged(db, "www.bbc.co.uk") == [(CLIENT_IP, "pupil", "allow", "http")]


def test_a_blocked_site_over_http_gets_the_block_page_and_never_reaches_the_origin(network, school):
    proxy, origin, db = school
    code, body = curl(network, "http://www.facebook.com/")
    assert code == 403 and "Social media is not allowed" in body, body
    assert logged(db, "www.facebook.com") == [(CLIENT_IP, "pupil", "block", "http")]
    assert not origin.seen("seen http www.facebook.com")


def test_https_is_decided_by_the_server_name_for_a_device_with_only_the_gateway_ca(network, school):
    proxy, origin, db = school
    ca = str(proxy.ca_cert_path)
    assert curl(network, "https://www.bbc.co.uk/news", "--cacert", ca) == (200, "origin ok: www.bbc.co.uk/news")
    code, body = curl(network, "https://m.facebook.com/", "--cacert", ca)
    assert code == 403 and "Social media is not allowed" in body, body
    assert not origin.seen("seen https m.facebook.com")
    assert (CLIENT_IP, "pupil", "block", "https") in logged(db, "m.facebook.com")


def test_a_forged_host_header_does_not_pick_the_address_the_gateway_connects_to(network, school):
    """The device sends an allowed site's name to an address of its choosing (where a blocked site could be): the
    gateway connects to where the name resolves, as it does for an explicit proxy client, not to that address."""
    proxy, origin, db = school
    code, body = curl(network, "http://www.bbc.co.uk/forged", address=DECOY_IP)
    assert (code, body) == (200, "origin ok: www.bbc.co.uk/forged")
    assert origin.seen("seen http www.bbc.co.uk /forged")
    assert not origin.seen("decoy")


def test_quic_and_a_vpn_port_are_dropped_while_allowed_udp_is_routed(network, school):
    proxy, origin, db = school
    for port in (4433, 443, 1194):
        network.run(network.client, sys.executable, "-c",
                    "import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                    f"[s.sendto(b'quic?', ('{ORIGIN_IP}', {port})) for _ in range(3)]")  # fmt: skip
    origin.wait_for("udp 4433 quic?")  # routing works, so what follows is the rule's doing
    time.sleep(1)
    assert not origin.seen("udp 443 ")
    assert not origin.seen("udp 1194 ")  # OpenVPN: nothing but the allowed ports leaves a pupil subnet


def test_without_the_redirect_pupils_web_traffic_is_dropped_not_routed_around_the_proxy(network, school):
    """Runs last: it takes the redirect away."""
    proxy, origin, db = school
    network.run(network.gateway, "nft", "flush", "chain", "inet", "school_gateway", "prerouting")
    done = network.run(network.client, "curl", "-sS", "--noproxy", "*", "--max-time", "5",
                       f"http://{ORIGIN_IP}/direct", check=False)  # fmt: skip
    assert done.returncode != 0
    assert not origin.seen(f"seen http {ORIGIN_IP} /direct")
