"""Impact preview: what a proposed grant or policy change would have changed over past access-log rows.

Pure: rows in, counts out. Each row is decided twice by the engine, once as things stand (the running policy and
the grants in force) and once with the change added, and only the rows whose outcome differs are counted. Rows
may stand for many identical requests (`count`), so the store can group a week of log into its distinct
combinations and each is decided once.

Grants are replayed as if in force over the whole window: a request asked for today is judged on the past week's
traffic, so its own start and expiry (which lie ahead) are set aside; its scope (who, which periods) still holds.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.decisions.engine import decide
from gateway.decisions.types import Action
from gateway.identity.types import Identity, IdentitySource
from gateway.lists.hosts import normalise_host, suffixes
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.exceptions import EMPTY, ExceptionSet
from gateway.policy.model import ExceptionGrant
from gateway.policy.store_grants import compile_store_grants

# How many hosts an Impact names, busiest first.
TOP_HOSTS = 20
_ALWAYS = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ReplayRow:
    """One logged request, or `count` identical ones, as the engine needs it."""

    host: str
    path: str
    group: str
    username: str | None
    year_group: int | None
    school_class: str | None
    # When it was logged (for grouped rows, one of their instants: all share the same period of the day).
    at: datetime
    # The person, or the device when nobody signed in: what "how many people" counts.
    who: str | None
    count: int = 1


@dataclass(frozen=True, slots=True)
class Change:
    """Requests whose outcome the change turns one way, and who made them."""

    requests: int = 0
    people: int = 0
    # Of those requests, how many would be let through but flagged to the officer.
    flagged: int = 0
    # (host, requests), most requests first, at most TOP_HOSTS of them.
    hosts: tuple[tuple[str, int], ...] = ()
    host_count: int = 0


@dataclass(frozen=True, slots=True)
class Impact:
    # Requests replayed.
    requests: int
    # Blocked as things stand, let through with the change.
    let_through: Change
    # Let through as things stand, blocked with the change (a rule or list change can do this; a grant cannot).
    newly_blocked: Change

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class _Tally:
    def __init__(self) -> None:
        self.requests = 0
        self.flagged = 0
        self.people: set[str] = set()
        self.hosts: Counter[str] = Counter()

    def add(self, row: ReplayRow, action: Action) -> None:
        self.requests += row.count
        if action is Action.FLAG:
            self.flagged += row.count
        if row.who is not None:
            self.people.add(row.who)
        self.hosts[row.host] += row.count

    def change(self) -> Change:
        top = tuple(sorted(self.hosts.items(), key=lambda item: (-item[1], item[0]))[:TOP_HOSTS])
        return Change(self.requests, len(self.people), self.flagged, top, len(self.hosts))


class RefusedGrant(ValueError):
    """A proposed grant that could never be made: no site named, an unknown list, an unliftable site."""


def proposed_grant(compiled: CompiledPolicy, **scope: object) -> ExceptionSet:
    """A grant to preview from its scope (the fields of an ExceptionGrant but its times and reason), checked as
    the store checks a grant; RefusedGrant says why one is refused."""
    try:
        grant = ExceptionGrant(id="proposed", expires=_ALWAYS, reason="impact preview", **scope)  # type: ignore[arg-type]
    except ValueError as exc:  # pydantic's ValidationError
        errors = getattr(exc, "errors", None)
        if errors is None:
            raise RefusedGrant(str(exc)) from None
        raise RefusedGrant("; ".join(
            ": ".join(filter(None, [".".join(map(str, e["loc"])), e["msg"]])) for e in errors())) from None  # fmt: skip
    exceptions, problems = compile_store_grants(compiled, [grant])
    if problems:
        raise RefusedGrant(problems[0].removeprefix("proposed: "))
    return exceptions


def timeless(grants: ExceptionSet) -> ExceptionSet:
    """The same grants in force at every instant (their scope otherwise unchanged)."""
    return ExceptionSet(tuple(dataclasses.replace(g, starts=None, expires=_ALWAYS) for g in grants.grants))


def preview(
    compiled: CompiledPolicy,
    rows: Iterable[ReplayRow],
    extra: ExceptionSet = EMPTY,
    *,
    proposed: CompiledPolicy | None = None,
    in_force: ExceptionSet = EMPTY,
) -> Impact:
    """Replay `rows` as things stand (`compiled` with `in_force`) and with the change (`proposed` or `compiled`,
    with `in_force` and `extra`); count the requests whose outcome differs."""
    now_grants = timeless(in_force)
    changed_grants = now_grants + timeless(extra)
    after_policy = proposed or compiled
    total = 0
    opened, closed = _Tally(), _Tally()
    for row in _valid(rows):
        total += row.count
        identity = Identity(group=row.group, source=IdentitySource.GIVEN, username=row.username,
                            year_group=row.year_group, school_class=row.school_class)  # fmt: skip
        before = decide(compiled, identity, row.host, row.path, row.at, now_grants).action
        after = decide(after_policy, identity, row.host, row.path, row.at, changed_grants).action
        if before is Action.BLOCK and after is not Action.BLOCK:
            opened.add(row, after)
        elif before is not Action.BLOCK and after is Action.BLOCK:
            closed.add(row, after)
    return Impact(total, opened.change(), closed.change())


def needs_paths(compiled: CompiledPolicy, proposed: CompiledPolicy | None = None) -> bool:
    """Whether decisions depend on the path (URL-prefix lists), so rows may not be grouped without it."""
    return bool(len(compiled.urls) or (proposed is not None and len(proposed.urls)))


def affected_hosts(compiled: CompiledPolicy, hosts: Iterable[str], extra: ExceptionSet) -> set[str] | None:
    """The logged hosts a set of extra grants could change the decision for (the rest need no replay), or None
    when any host could be (a grant naming lists while URL-prefix lists make matches path-dependent)."""
    if needs_paths(compiled) and any(grant.mask for grant in extra.grants):
        return None
    found = set()
    for logged in hosts:
        host = normalise_host(logged)
        if host is None:
            continue
        mask = 0
        for _, bits in compiled.domains.match(host):
            mask |= bits
        host_suffixes = suffixes(host)
        if any(grant.covers(host_suffixes, mask) for grant in extra.grants):
            found.add(logged)
    return found


def _valid(rows: Iterable[ReplayRow]) -> Iterator[ReplayRow]:
    """Rows with their host in the engine's form; a host no request could have had is skipped."""
    normal: dict[str, str | None] = {}
    for row in rows:
        host = normal.get(row.host, "")
        if host == "":
            host = normal[row.host] = normalise_host(row.host)
        if host is None:
            continue
        yield row if host == row.host else dataclasses.replace(row, host=host)
