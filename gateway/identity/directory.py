"""The roster and device register in the store: importing them, looking people up, and the in-memory
`Directory` the resolver reads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.identity.people import Device, Person, StaffRole
from gateway.identity.types import Identity, IdentitySource
from gateway.store.models.devices import DeviceRecord
from gateway.store.models.people import PersonRecord
from gateway.store.teaching import replace_teaching

Store = Session | sessionmaker[Session]


@dataclass(frozen=True, slots=True)
class ClassProfile:
    """What a class's shared devices are treated as: the group and year group all its active pupils share."""

    group: str
    year_group: int | None


@dataclass(frozen=True, slots=True)
class Directory:
    people: dict[str, Person] = field(default_factory=dict)
    devices_by_mac: dict[str, Device] = field(default_factory=dict)
    classes: dict[str, ClassProfile] = field(default_factory=dict)
    # (people count, latest change, devices count, latest change): cheap to ask the store for, so a poller
    # reloads only when something changed.
    version: tuple[object, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportSummary:
    added: list[str]
    updated: list[str]
    unchanged: int
    # Not in this import: marked inactive, history kept.
    left: list[str]
    # Back in the import after leaving.
    returned: list[str]

    def __str__(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {self.unchanged} unchanged, "
            f"{len(self.left)} marked as left, {len(self.returned)} returned"
        )


def _session(store: Store) -> Session:
    return store() if isinstance(store, sessionmaker) else store


def person_from_record(r: PersonRecord) -> Person:
    return Person(
        username=r.username,
        display_name=r.display_name,
        group=r.group_name,
        year_group=r.year_group,
        school_class=r.school_class,
        date_of_birth=r.date_of_birth,
        email=r.email,
        roles=frozenset(StaffRole(x) for x in r.roles.split()),
        active=r.active,
    )


def device_from_record(r: DeviceRecord) -> Device:
    return Device(
        name=r.name,
        mac=r.mac,
        kind=r.kind,
        personal=r.personal,
        username=r.username,
        school_class=r.school_class,
        trolley=r.trolley,
        group=r.group_name,
        active=r.active,
        approved=r.approved_at is not None and not r.personal,
    )


def import_people(session: Session, people: Iterable[Person], now: datetime | None = None, *,
                  site: str | None = None, only_site: bool = False) -> ImportSummary:  # fmt: skip
    """Make the store's roster match `people`, in the caller's transaction: new people are added, changed ones
    updated, people missing from the import marked as left (inactive, kept). Credentials are never touched.
    Everyone imported belongs to `site`. With `only_site`, the import is that school's roster only (a trust's
    shared store): only its people can be marked as left, and only its class teachers are replaced; someone
    imported from another school moves to this one."""
    now = now or datetime.now(UTC)
    existing = {r.username: r for r in session.scalars(select(PersonRecord))}
    added, updated, returned, left = [], [], [], []
    unchanged = 0
    seen = set()
    people = list(people)
    replace_teaching(session, people, site, only_site=only_site)
    for p in people:
        seen.add(p.username)
        values = {
            "display_name": p.display_name,
            "group_name": p.group,
            "year_group": p.year_group,
            "school_class": p.school_class,
            "date_of_birth": p.date_of_birth,
            "email": p.email,
            "roles": " ".join(sorted(r.value for r in p.roles)),
        }
        if site is not None:
            values["site"] = site
        r = existing.get(p.username)
        if r is None:
            session.add(PersonRecord(username=p.username, active=True, created_at=now, updated_at=now, **values))
            added.append(p.username)
            continue
        changed = any(getattr(r, k) != v for k, v in values.items())
        if not r.active:
            returned.append(p.username)
            r.active, r.left_at, changed = True, None, True
        elif changed:
            updated.append(p.username)
        else:
            unchanged += 1
        if changed:
            for k, v in values.items():
                setattr(r, k, v)
            r.updated_at = now
    for username, r in existing.items():
        if username not in seen and r.active and (not only_site or r.site == site):
            r.active, r.left_at, r.updated_at = False, now, now
            left.append(username)
    session.flush()
    return ImportSummary(added, updated, unchanged, left, returned)


def import_devices(session: Session, devices: Iterable[Device], now: datetime | None = None, *,
                   site: str | None = None, only_site: bool = False) -> ImportSummary:  # fmt: skip
    """Make the device register match `devices` (by name); devices missing from the import are retired. Every
    device imported belongs to `site`. With `only_site`, the import is that school's register only (a trust's
    shared store): only its devices can be retired; a device imported from another school moves to this one."""
    now = now or datetime.now(UTC)
    existing = {r.name.lower(): r for r in session.scalars(select(DeviceRecord))}
    added, updated, returned, left = [], [], [], []
    unchanged = 0
    incoming = list(devices)
    names = {d.name.lower() for d in incoming}
    # Free MACs held by retired or renamed devices first, so the unique index never sees a transient clash.
    for key, r in existing.items():
        if key not in names and r.active and (not only_site or r.site == site):
            r.active, r.mac, r.updated_at = False, None, now
            left.append(r.name)
    macs = {d.mac for d in incoming if d.mac}
    for key, r in existing.items():
        if key in names and r.mac in macs and not any(d.name.lower() == key and d.mac == r.mac for d in incoming):
            r.mac = None
    session.flush()
    for d in incoming:
        values = {
            "name": d.name,
            "mac": d.mac,
            "kind": d.kind,
            "personal": d.personal,
            "username": d.username,
            "school_class": d.school_class,
            "trolley": d.trolley,
            "group_name": d.group,
        }
        if site is not None:
            values["site"] = site
        r = existing.get(d.name.lower())
        if r is None:
            session.add(DeviceRecord(active=True, created_at=now, updated_at=now, **values))
            added.append(d.name)
            continue
        changed = any(getattr(r, k) != v for k, v in values.items())
        if not r.active:
            returned.append(d.name)
            r.active, changed = True, True
        elif changed:
            updated.append(d.name)
        else:
            unchanged += 1
        if changed:
            # The headteacher approved this school device, with this address: not a personal one, nor another.
            if r.approved_at is not None and (d.personal or r.mac != d.mac):
                r.approved_at, r.approved_by = None, None
            for k, v in values.items():
                setattr(r, k, v)
            r.updated_at = now
    session.flush()
    return ImportSummary(added, updated, unchanged, left, returned)


def lookup_person(store: Store, username: str) -> Person | None:
    """The roster entry for `username` (case-insensitive), leavers included (check `.active`)."""
    session = _session(store)
    try:
        r = session.scalar(select(PersonRecord).where(PersonRecord.username == username.strip().lower()))
        return person_from_record(r) if r is not None else None
    finally:
        if session is not store:
            session.close()


def identity_for_person(
    person: Person,
    *,
    source: IdentitySource,
    client_ip: str | None = None,
    network: str | None = None,
    device: str | None = None,
    group: str | None = None,
) -> Identity:
    return Identity(
        group=group or person.group,
        client_ip=client_ip,
        source=source,
        network=network,
        username=person.username,
        display_name=person.display_name,
        year_group=person.year_group,
        school_class=person.school_class,
        date_of_birth=person.date_of_birth,
        device=device,
    )


def identity_for_user(store: Store, username: str, known_groups: Iterable[str] | None = None) -> Identity:
    """The identity the proxy would give `username` once signed in (for `gateway check --user`).

    Raises LookupError for a username that is not in the roster, has left, or whose roster group the policy
    does not define.
    """
    person = lookup_person(store, username)
    if person is None:
        raise LookupError(f"{username!r} is not in the roster")
    if not person.active:
        raise LookupError(f"{username!r} has left (inactive in the roster)")
    if known_groups is not None and person.group not in set(known_groups):
        raise LookupError(f"{username!r} is in group {person.group!r}, which the policy does not define")
    return identity_for_person(person, source=IdentitySource.GIVEN)


def directory_version(session: Session) -> tuple[object, ...]:
    p = session.execute(select(func.count(PersonRecord.id), func.max(PersonRecord.updated_at))).one()
    d = session.execute(select(func.count(DeviceRecord.id), func.max(DeviceRecord.updated_at))).one()
    return (*p, *d)


def load_directory(session: Session) -> Directory:
    version = directory_version(session)
    people = {r.username: person_from_record(r) for r in session.scalars(select(PersonRecord))}
    devices = {
        r.mac: device_from_record(r)
        for r in session.scalars(select(DeviceRecord).where(DeviceRecord.active, DeviceRecord.mac.is_not(None)))
        if r.mac
    }
    by_class: dict[str, list[Person]] = {}
    for p in people.values():
        if p.active and p.school_class and not p.roles:
            by_class.setdefault(p.school_class, []).append(p)
    classes = {}
    for name, pupils in by_class.items():
        groups = {p.group for p in pupils}
        # A class whose pupils are in different groups gets no profile: its devices fall back to their own
        # group or the network's. A mixed-age class counts as its youngest year group.
        if len(groups) == 1:
            years = [p.year_group for p in pupils if p.year_group is not None]
            classes[name] = ClassProfile(groups.pop(), min(years) if years else None)
    return Directory(people, devices, classes, version)
