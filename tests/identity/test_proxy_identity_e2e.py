"""The identity sources in a real mitmdump: devices from DHCP leases (changing under the running proxy),
RADIUS accounting from pyrad's client, portal sessions from the store, and the captive-portal redirect."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyrad.client import Client
from sqlalchemy.orm import Session, sessionmaker

from gateway.identity.directory import import_devices, import_people
from gateway.identity.people import Device, Person
from gateway.identity.radius import radius_dictionary
from gateway.identity.sessions import start_session
from gateway.identity.types import IdentitySource
from tests.support.clients import fetch
from tests.support.ports import free_port
from tests.support.policies import always_lesson_policy

pytestmark = pytest.mark.e2e

POLICY = always_lesson_policy(
    """\
school: {name: Test School, contact: the e-safety officer}
groups: {pupil: {}, staff: {}, guest: {}, infants: {}}
default_group: guest
sign_in: {idle_timeout_minutes: 1}
networks:
  - name: classroom-wifi
    subnets: [127.0.0.0/24]
    group: guest
    identity: [radius, portal, device, subnet]
    sign_in_required: true
""",
    """\
rules:
  - {id: no-games, domains: [games.example], action: block, reason: Games are not allowed}
""",
)
SECRET = b"controller-secret"
PORTAL = "http://portal.school.test:8080"


def wait(predicate: Callable[[], bool], timeout: float = 8.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def write_leases(path: Path, lines: list[str]) -> None:
    tmp = path.with_suffix(".new")
    tmp.write_text("".join(f"{line}\n" for line in lines))
    os.replace(tmp, path)


def test_identity_sources_through_the_proxy(tmp_path: Path, mitmdump_proxy, origin_http,
                                            store_url: str, store: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    with store.begin() as s:
        import_people(s, [Person("amy", "Amy Jones", "infants", year_group=1, school_class="1A"),
                          Person("mrp", "Mr Patel", "staff"), Person("ben", "Ben Smith", "pupil", year_group=4)])
        import_devices(s, [Device("iPad-1A-07", "aa:bb:cc:00:00:07", "ipad", school_class="1A")])
        # A portal sign-in the web app wrote before this proxy started, and one that has been idle too long.
        start_session(s, client_ip="127.0.0.20", source=IdentitySource.PORTAL, username="ben", now=now)
        old = start_session(s, client_ip="127.0.0.21", source=IdentitySource.PORTAL, username="ben", now=now)
        old.last_seen_at = old.started_at = now - timedelta(minutes=5)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    (tmp_path / "lists").mkdir()
    leases = tmp_path / "dnsmasq.leases"
    expiry = int(time.time()) + 3600
    write_leases(leases, [f"{expiry} aa:bb:cc:00:00:07 127.0.0.7 ipad *", "garbage line"])
    secret = tmp_path / "radius.secret"
    secret.write_bytes(SECRET + b"\n")
    radius_port = free_port()
    proxy = mitmdump_proxy(
        ["addons/gateway.py"],
        {
            "gateway_policy": str(policy), "gateway_db": store_url, "gateway_leases": str(leases),
            "gateway_portal_url": PORTAL, "gateway_radius_listen": f"127.0.0.1:{radius_port}",
            "gateway_radius_secret_file": str(secret), "gateway_identity_interval_ms": 200,
        },
        origin=origin_http, ready_line=r"RADIUS accounting listening",
    )

    def get(url: str, device: str):  # type: ignore[no-untyped-def]
        return fetch(url, proxy=proxy.proxy_url, source_address=device, headers={"Accept": "text/html"})

    # The class iPad, known by its DHCP lease: not sent to sign in; its block page names the device.
    assert get("http://learn.example/", "127.0.0.7").status == 200
    blocked = get("http://games.example/", "127.0.0.7")
    assert blocked.status == 403 and "Device: iPad-1A-07" in blocked.text

    # An unknown device on a sign-in-required network goes to the sign-in page.
    unknown = get("http://learn.example/page?x=1", "127.0.0.8")
    assert unknown.status == 302
    assert unknown.headers["location"] == f"{PORTAL}/portal/sign-in?next=http%3A%2F%2Flearn.example%2Fpage%3Fx%3D1"
    assert not origin_http.seen(host="learn.example", path="/page")
    # The sign-in page itself is reachable, and the web app is told the real client address.
    assert get(f"{PORTAL}/portal/sign-in", "127.0.0.8").status == 200

    # The lease file changes under the running gateway: .8 is now the iPad.
    write_leases(leases, [f"{expiry} aa:bb:cc:00:00:07 127.0.0.8 ipad *"])
    assert wait(lambda: get("http://learn.example/", "127.0.0.8").status == 200)
    assert get("http://learn.example/", "127.0.0.7").status == 302

    # RADIUS accounting from the WiFi controller binds .9 to Mr Patel.
    client = Client(server="127.0.0.1", acctport=radius_port, secret=SECRET, dict=radius_dictionary(), timeout=3)
    req = client.CreateAcctPacket(User_Name="mrp")
    req["Acct-Status-Type"] = "Start"
    req["Framed-IP-Address"] = "127.0.0.9"
    req["Acct-Session-Id"] = "a1"
    client.SendPacket(req)
    assert wait(lambda: "Signed in as Mr Patel" in get("http://games.example/", "127.0.0.9").text)

    # The portal session from before the restart holds; the idle one has fallen back to the network default.
    assert "Signed in as Ben Smith" in get("http://games.example/", "127.0.0.20").text
    assert get("http://learn.example/", "127.0.0.21").status == 302
