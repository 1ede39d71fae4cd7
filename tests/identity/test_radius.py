"""Real RADIUS accounting packets from pyrad's client to the listener, binding addresses in the store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from ipaddress import ip_network

import pytest
from pyrad import packet
from pyrad.client import Client, Timeout
from sqlalchemy.orm import Session, sessionmaker

from gateway.identity.directory import import_people
from gateway.identity.live import LiveIdentity
from gateway.identity.people import Person
from gateway.identity.radius import AccountingListener, radius_dictionary
from gateway.identity.resolver import Resolver
from gateway.identity.sessions import live_bindings
from gateway.identity.types import IdentitySource as S
from gateway.policy.model import Network

SECRET = b"wifi-controller-secret"
NETWORKS = [Network(name="staff-wifi", subnets=[ip_network("10.20.0.0/16")], group="guest",
                    identity=[S.RADIUS, S.SUBNET])]


@pytest.fixture
def live(store: sessionmaker[Session]) -> Iterator[LiveIdentity]:
    with store.begin() as s:
        import_people(s, [Person("mrp", "Mr Patel", "staff"), Person("amy", "Amy Jones", "pupil", year_group=3)])
    live = LiveIdentity(Resolver(NETWORKS, "guest", {"staff", "pupil", "guest"}), store, interval=0.2)
    live.start()
    yield live
    live.stop()


@pytest.fixture
def listener(live: LiveIdentity) -> Iterator[AccountingListener]:
    listener = AccountingListener(SECRET, live.on_accounting, host="127.0.0.1", port=0,
                                  allowed=[ip_network("127.0.0.0/8")])
    listener.start()
    yield listener
    listener.stop()


def client(listener: AccountingListener, secret: bytes = SECRET) -> Client:
    return Client(server="127.0.0.1", acctport=listener.address[1], secret=secret, dict=radius_dictionary(),
                  retries=1, timeout=2)


def send(c: Client, status: str, user: str, ip: str, mac: str = "AA-BB-CC-00-00-10", sid: str = "s1") -> packet.Packet:
    req = c.CreateAcctPacket(User_Name=user)
    req["Acct-Status-Type"] = status
    req["Framed-IP-Address"] = ip
    req["Calling-Station-Id"] = mac
    req["Acct-Session-Id"] = sid
    req["NAS-Identifier"] = "controller-1"
    return c.SendPacket(req)


def wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_start_interim_stop_bind_and_unbind(listener: AccountingListener, live: LiveIdentity,
                                            store: sessionmaker[Session]) -> None:
    c = client(listener)
    assert send(c, "Start", "SCHOOL\\MrP", "10.20.0.9").code == packet.AccountingResponse
    wait_for(lambda: "10.20.0.9" in live.resolver.bindings[S.RADIUS])
    ident = live.resolver.resolve("10.20.0.9", datetime.now(UTC))
    assert (ident.username, ident.group, ident.source) == ("mrp", "staff", S.RADIUS)
    with store() as s:
        b = live_bindings(s)[S.RADIUS]["10.20.0.9"]
    assert (b.mac, b.username) == ("aa:bb:cc:00:00:10", "mrp")
    assert send(c, "Interim-Update", "mrp@school.example", "10.20.0.9").code == packet.AccountingResponse
    assert send(c, "Stop", "mrp", "10.20.0.9").code == packet.AccountingResponse
    wait_for(lambda: "10.20.0.9" not in live.resolver.bindings[S.RADIUS])
    ident = live.resolver.resolve("10.20.0.9", datetime.now(UTC))
    assert (ident.username, ident.group, ident.source) == (None, "guest", S.SUBNET)


def test_wrong_secret_is_dropped_and_binds_nothing(listener: AccountingListener, live: LiveIdentity) -> None:
    with pytest.raises(Timeout):
        send(client(listener, b"not-the-secret"), "Start", "mrp", "10.20.0.10")
    assert "10.20.0.10" not in live.resolver.bindings[S.RADIUS]


def test_a_restarted_gateway_keeps_radius_bindings(listener: AccountingListener, live: LiveIdentity,
                                                   store: sessionmaker[Session]) -> None:
    send(client(listener), "Start", "amy", "10.20.0.11")
    fresh = LiveIdentity(Resolver(NETWORKS, "guest", {"staff", "pupil", "guest"}), store)
    fresh.refresh()
    assert fresh.resolver.resolve("10.20.0.11", datetime.now(UTC)).username == "amy"
