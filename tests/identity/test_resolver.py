"""Resolution order per network, the roster in the store, and never more permissive than the network."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from ipaddress import ip_network

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gateway.identity.ages import age_of
from gateway.identity.directory import identity_for_user, import_devices, import_people, load_directory, lookup_person
from gateway.identity.leases import Lease
from gateway.identity.people import Device, Person
from gateway.identity.resolver import Binding, Resolver
from gateway.identity.types import IdentitySource as S
from gateway.policy.model import Network

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
NETWORKS = [
    Network(name="pupil-wifi", subnets=[ip_network("10.10.0.0/16")], group="pupil",
            identity=[S.RADIUS, S.PORTAL, S.DEVICE, S.SUBNET], sign_in_required=True),
    Network(name="guest-wifi", subnets=[ip_network("10.30.0.0/16")], group="guest", identity=[S.PORTAL, S.SUBNET]),
]
PEOPLE = [
    Person("amy", "Amy Jones", "infants", year_group=1, school_class="1A", date_of_birth=date(2020, 5, 1)),
    Person("ben", "Ben Smith", "pupil", year_group=4, school_class="4S"),
    Person("cara", "Cara Lee", "pupil", year_group=4, school_class="4S"),
    Person("mrp", "Mr Patel", "staff"),
    Person("typo", "Typo Group", "wizards"),
]
DEVICES = [
    Device("iPad-1A-07", "aa:bb:cc:00:00:07", "ipad", school_class="1A"),
    Device("Laptop-MrP", "aa:bb:cc:00:00:10", "laptop", username="mrp"),
    Device("CB-T1-01", "aa:bb:cc:00:01:01", "chromebook", trolley="T1"),
    Device("Phone-Ben", "aa:bb:cc:00:02:01", "phone", personal=True, username="ben"),
]


@pytest.fixture
def resolver(store: sessionmaker[Session]) -> Resolver:
    with store.begin() as s:
        import_people(s, PEOPLE, NOW)
        import_devices(s, DEVICES, NOW)
    r = Resolver(NETWORKS, "guest", {"pupil", "staff", "guest", "infants"}, portal_idle=timedelta(minutes=30))
    with store() as s:
        r.directory = load_directory(s)
    leases = {
        "10.10.1.7": Lease("10.10.1.7", "aa:bb:cc:00:00:07", None),
        "10.10.1.10": Lease("10.10.1.10", "aa:bb:cc:00:00:10", None),
        "10.10.1.11": Lease("10.10.1.11", "aa:bb:cc:00:01:01", None),
        "10.10.1.12": Lease("10.10.1.12", "aa:bb:cc:ff:ff:ff", None),
        "10.10.1.13": Lease("10.10.1.13", "aa:bb:cc:00:02:01", None),
    }
    r.leases = lambda ip, now: leases.get(ip)
    return r


def bind(r: Resolver, source: S, ip: str, username: str, mac: str | None = None, seen: datetime = NOW) -> None:
    r.bindings[source] = {**r.bindings[source], ip: Binding(ip, source, username, NOW - timedelta(hours=1), seen, mac)}


def test_order_radius_then_portal_then_device_then_subnet(resolver: Resolver) -> None:
    ident = resolver.resolve("10.10.1.7", NOW)
    assert (ident.source, ident.group, ident.device, ident.school_class, ident.year_group) == (
        S.DEVICE, "infants", "iPad-1A-07", "1A", 1
    )
    bind(resolver, S.PORTAL, "10.10.1.7", "ben")
    ident = resolver.resolve("10.10.1.7", NOW)
    assert (ident.source, ident.username, ident.group, ident.device) == (S.PORTAL, "ben", "pupil", "iPad-1A-07")
    assert ident.describe() == "Signed in as Ben Smith · Device: iPad-1A-07 · Group: pupil"
    bind(resolver, S.RADIUS, "10.10.1.7", "cara")
    assert resolver.resolve("10.10.1.7", NOW).username == "cara"


def test_devices_assigned_to_person_trolley_and_unknown(resolver: Resolver) -> None:
    staff = resolver.resolve("10.10.1.10", NOW)
    assert (staff.username, staff.group, staff.device) == ("mrp", "staff", "Laptop-MrP")
    trolley = resolver.resolve("10.10.1.11", NOW)
    assert (trolley.username, trolley.group, trolley.device, trolley.source) == (None, "pupil", "CB-T1-01", S.DEVICE)
    unknown = resolver.resolve("10.10.1.12", NOW)
    assert (unknown.group, unknown.source, unknown.username) == ("pupil", S.SUBNET, None)
    identity, steps = resolver.explain("10.10.1.12", NOW)
    assert [s.source for s in steps] == [S.RADIUS, S.PORTAL, S.DEVICE, S.SUBNET]
    assert "not a registered device" in steps[2].detail


def test_the_device_registers_ownership_travels_with_the_identity_whoever_signs_in(resolver: Resolver) -> None:
    assert resolver.resolve("10.10.1.11", NOW).device_owner == "school"
    assert resolver.resolve("10.10.1.13", NOW).device_owner == "personal"
    assert resolver.resolve("10.10.1.12", NOW).device_owner is None  # not in the register
    bind(resolver, S.PORTAL, "10.10.1.13", "cara")
    signed_in = resolver.resolve("10.10.1.13", NOW)
    assert (signed_in.username, signed_in.device, signed_in.device_owner) == ("cara", "Phone-Ben", "personal")


def test_expired_portal_session_falls_back_to_network_default(resolver: Resolver) -> None:
    bind(resolver, S.PORTAL, "10.30.0.5", "mrp", seen=NOW - timedelta(minutes=31))
    ident = resolver.resolve("10.30.0.5", NOW)
    assert (ident.group, ident.source, ident.username) == ("guest", S.SUBNET, None)
    # A request seen by the proxy keeps the session alive.
    resolver.activity["10.30.0.5"] = NOW - timedelta(minutes=5)
    assert resolver.resolve("10.30.0.5", NOW).username == "mrp"
    _, steps = resolver.explain("10.30.0.5", NOW + timedelta(minutes=40))
    assert "no longer holds: idle" in steps[0].detail


def test_lease_moving_ends_the_binding(resolver: Resolver) -> None:
    bind(resolver, S.RADIUS, "10.10.1.10", "ben", mac="aa:bb:cc:00:00:55")
    ident = resolver.resolve("10.10.1.10", NOW)
    # The lease for .10 now belongs to Mr Patel's laptop, not Ben's device: Ben's binding no longer holds.
    assert (ident.username, ident.source) == ("mrp", S.DEVICE)


def test_unknown_or_left_people_and_unknown_groups_never_widen(resolver: Resolver, store: sessionmaker[Session]) -> None:
    bind(resolver, S.PORTAL, "10.30.0.6", "nobody")
    assert resolver.resolve("10.30.0.6", NOW).group == "guest"
    bind(resolver, S.PORTAL, "10.30.0.7", "typo")
    ident = resolver.resolve("10.30.0.7", NOW)
    assert (ident.username, ident.group) == ("typo", "guest")
    with store.begin() as s:
        summary = import_people(s, [p for p in PEOPLE if p.username != "mrp"], NOW)
    assert summary.left == ["mrp"]
    with store() as s:
        resolver.directory = load_directory(s)
    bind(resolver, S.PORTAL, "10.30.0.8", "mrp")
    assert resolver.resolve("10.30.0.8", NOW).group == "guest"
    assert resolver.resolve("192.168.9.9", NOW).group == "guest"


def test_reimport_updates_marks_leavers_and_keeps_them(store: sessionmaker[Session]) -> None:
    with store.begin() as s:
        first = import_people(s, PEOPLE, NOW)
    assert len(first.added) == 5
    moved = Person("ben", "Ben Smith", "pupil", year_group=5, school_class="5S")
    with store.begin() as s:
        second = import_people(s, [moved, *PEOPLE[2:]], NOW)
    assert (second.updated, second.left, second.unchanged) == (["ben"], ["amy"], 3)
    amy = lookup_person(store, "AMY")
    assert amy is not None and not amy.active
    with store.begin() as s:
        third = import_people(s, PEOPLE, NOW)
    assert third.returned == ["amy"]
    ident = identity_for_user(store, "amy", {"infants"})
    assert (ident.group, ident.year_group, age_of(ident, date(2026, 11, 26))) == ("infants", 1, 6)
    with pytest.raises(LookupError, match="not in the roster"):
        identity_for_user(store, "zed")
