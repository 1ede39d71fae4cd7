"""Client address -> Identity, trying each source the client's network names, in order.

Pure and in memory: the proxy calls `resolve` once per request (a few dict lookups); the state it reads
(directory, bindings, leases) is swapped in whole by the threads that load it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from gateway.identity.directory import Directory, identity_for_person
from gateway.identity.leases import Lease
from gateway.identity.people import Device, Person
from gateway.identity.subnets import SubnetDirectory
from gateway.identity.types import Identity, IdentitySource
from gateway.policy.model import Network, Policy

BOUND_SOURCES = (IdentitySource.RADIUS, IdentitySource.PORTAL)


@dataclass(frozen=True, slots=True)
class Binding:
    """A live IP -> person binding from RADIUS accounting or a portal sign-in (an `identity_session` row)."""

    client_ip: str
    source: IdentitySource
    username: str
    started_at: datetime
    last_seen_at: datetime
    mac: str | None = None
    session_id: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One source tried for `whois`: what it said, and whether it decided."""

    source: IdentitySource
    decided: bool
    detail: str


LeaseLookup = Callable[[str, datetime], Lease | None]


def _no_leases(_ip: str, _now: datetime) -> Lease | None:
    return None


class Resolver:
    def __init__(
        self,
        networks: Sequence[Network],
        default_group: str,
        groups: Collection[str],
        portal_idle: timedelta = timedelta(minutes=60),
        radius_stale: timedelta = timedelta(hours=24),
    ) -> None:
        self.configure(SubnetDirectory(networks, default_group), groups, portal_idle)
        self.radius_stale = radius_stale
        self.directory = Directory()
        # source -> client IP -> binding; each inner dict is replaced whole, never mutated.
        self.bindings: dict[IdentitySource, dict[str, Binding]] = {s: {} for s in BOUND_SOURCES}
        self.leases: LeaseLookup = _no_leases
        # Client IP -> last request seen by the proxy: portal sessions end after portal_idle without one.
        self.activity: dict[str, datetime] = {}

    @classmethod
    def for_policy(cls, policy: Policy) -> Resolver:
        return cls(
            policy.networks,
            policy.default_group,
            policy.groups,
            timedelta(minutes=policy.sign_in.idle_timeout_minutes),
        )

    def configure(self, subnets: SubnetDirectory, groups: Collection[str], portal_idle: timedelta) -> None:
        """Take a (re)loaded policy's networks and groups; the live state stays."""
        self.subnets = subnets
        self.groups = frozenset(groups)
        self.portal_idle = portal_idle

    def configure_policy(self, policy: Policy, subnets: SubnetDirectory | None = None) -> None:
        self.configure(
            subnets or SubnetDirectory(policy.networks, policy.default_group),
            policy.groups,
            timedelta(minutes=policy.sign_in.idle_timeout_minutes),
        )

    # --- freshness -------------------------------------------------------------------------------------

    def last_seen(self, b: Binding) -> datetime:
        seen = self.activity.get(b.client_ip)
        return max(b.last_seen_at, seen) if seen is not None and seen >= b.started_at else b.last_seen_at

    def why_stale(self, b: Binding, now: datetime) -> str | None:
        """Why a binding no longer holds (its session should end), or None while it does."""
        if b.source is IdentitySource.PORTAL and now - self.last_seen(b) > self.portal_idle:
            return "idle"
        if b.source is IdentitySource.RADIUS and now - b.last_seen_at > self.radius_stale:
            return "expired"
        if b.mac is not None:
            lease = self.leases(b.client_ip, now)
            if lease is not None and lease.mac != b.mac:
                return "lease_moved"
        return None

    # --- resolution ------------------------------------------------------------------------------------

    def resolve(self, client_ip: str, now: datetime, proxy_user: str | None = None) -> Identity:
        return self._resolve(client_ip, now, proxy_user, None)

    def explain(self, client_ip: str, now: datetime, proxy_user: str | None = None) -> tuple[Identity, list[Step]]:
        steps: list[Step] = []
        return self._resolve(client_ip, now, proxy_user, steps), steps

    def _resolve(self, ip: str, now: datetime, proxy_user: str | None, trace: list[Step] | None) -> Identity:
        network = self.subnets.network_for(ip)
        if network is None:
            if trace is not None:
                trace.append(Step(IdentitySource.SUBNET, True, f"{ip} is on no policy network: default group"))
            return self.subnets.identify(ip)
        default = network.group
        lease = self.leases(ip, now)
        device = self.directory.devices_by_mac.get(lease.mac) if lease is not None else None
        device_name = device.name if device is not None else None

        def person_identity(username: str, source: IdentitySource, how: str) -> Identity | None:
            person = self.directory.people.get(username.lower())
            if person is None or not person.active:
                if trace is not None:
                    state = "not in the roster" if person is None else "marked as left in the roster"
                    trace.append(Step(source, False, f"{how} {username!r}, who is {state}"))
                return None
            group = person.group if person.group in self.groups else default
            if trace is not None:
                note = "" if group == person.group else f" (roster group {person.group!r} is not in the policy)"
                trace.append(Step(source, True, f"{how} {person.username!r} ({person.display_name}){note}"))
            return identity_for_person(
                person, source=source, client_ip=ip, network=network.name, device=device_name, group=group
            )

        for source in network.identity:
            if source in BOUND_SOURCES:
                b = self.bindings[source].get(ip)
                if b is None:
                    if trace is not None:
                        trace.append(Step(source, False, "no live session for this address"))
                    continue
                stale = self.why_stale(b, now)
                if stale is not None:
                    if trace is not None:
                        trace.append(Step(source, False, f"session for {b.username!r} no longer holds: {stale}"))
                    continue
                since = b.started_at.strftime("%Y-%m-%d %H:%M UTC")
                found = person_identity(b.username, source, f"signed in since {since} as")
            elif source is IdentitySource.PROXY_AUTH:
                if proxy_user is None:
                    if trace is not None:
                        trace.append(Step(source, False, "no proxy credentials on this request"))
                    continue
                found = person_identity(proxy_user, source, "proxy credentials for")
            elif source is IdentitySource.DEVICE:
                found = self._device_identity(ip, network, lease, device, trace)
            else:
                found = Identity(group=default, client_ip=ip, source=source, network=network.name, device=device_name)
                if trace is not None:
                    trace.append(Step(source, True, f"network {network.name!r}: its default group {default!r}"))
            if found is not None:
                return _owned(found, device)
        if trace is not None:
            trace.append(Step(IdentitySource.SUBNET, True, f"nothing else said: network {network.name!r} default"))
        return _owned(Identity(
            group=default, client_ip=ip, source=IdentitySource.SUBNET, network=network.name, device=device_name
        ), device)  # fmt: skip

    def _device_identity(
        self, ip: str, network: Network, lease: Lease | None, device: Device | None, trace: list[Step] | None
    ) -> Identity | None:
        src = IdentitySource.DEVICE
        if lease is None or device is None:
            if trace is not None:
                detail = "no DHCP lease for this address" if lease is None else (
                    f"lease to {lease.mac}, which is not a registered device"
                )
                trace.append(Step(src, False, detail))
            return None
        base = Identity(group=network.group, client_ip=ip, source=src, network=network.name, device=device.name)
        override = device.group if device.group in self.groups else None
        if device.username:
            person: Person | None = self.directory.people.get(device.username)
            if person is not None and person.active:
                group = override or (person.group if person.group in self.groups else network.group)
                if trace is not None:
                    whose = "personal device of" if device.personal else "assigned to"
                    trace.append(Step(src, True, f"{device.name} ({lease.mac}) {whose} {person.username!r}"))
                return identity_for_person(
                    person, source=src, client_ip=ip, network=network.name, device=device.name, group=group
                )
        if device.school_class:
            profile = self.directory.classes.get(device.school_class)
            if profile is not None and profile.group in self.groups:
                if trace is not None:
                    trace.append(Step(src, True, f"{device.name} ({lease.mac}) belongs to class {device.school_class}"))
                return Identity(
                    group=override or profile.group,
                    client_ip=ip,
                    source=src,
                    network=network.name,
                    device=device.name,
                    year_group=profile.year_group,
                    school_class=device.school_class,
                )
        if trace is not None:
            where = f"trolley {device.trolley}" if device.trolley else "no known person or class"
            group = override or network.group
            trace.append(Step(src, True, f"{device.name} ({lease.mac}), {where}: group {group!r}"))
        return Identity(
            group=override or network.group, client_ip=ip, source=src, network=network.name, device=device.name
        )


def _owned(identity: Identity, device: Device | None) -> Identity:
    """The identity with its device's ownership, which rules may name (`device_ownership`)."""
    if device is None:
        return identity
    return replace(identity, device_owner="personal" if device.personal else "school")
