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
    replay = _Replay(compiled, proposed or compiled, timeless(in_force), timeless(in_force) + timeless(extra))
    total = 0
    opened, closed = _Tally(), _Tally()
    for row in _valid(rows):
        total += row.count
        before, after = replay.outcomes(row)
        if before is Action.BLOCK and after is not Action.BLOCK:
            opened.add(row, after)
        elif before is not Action.BLOCK and after is Action.BLOCK:
            closed.add(row, after)
    return Impact(total, opened.change(), closed.change())


class _Replay:
    """Both decisions for a row, remembered for every row that must decide the same.

    Most logged hosts are on no list and named by no grant: for those the engine's answer depends only on who and
    when, so they share one remembered answer; the person, class and instant are part of the key only when some
    grant or policy exception could tell them apart.
    """

    def __init__(self, before: CompiledPolicy, after: CompiledPolicy, before_grants: ExceptionSet,
                 after_grants: ExceptionSet) -> None:  # fmt: skip
        self.before, self.after = before, after
        self.before_grants, self.after_grants = before_grants, after_grants
        grants = [*before.exceptions.grants, *after.exceptions.grants, *after_grants.grants]
        self.grant_domains = frozenset(domain for grant in grants for domain in grant.domains)
        self.by_user = any(grant.users is not None for grant in grants)
        self.by_class = any(grant.classes is not None for grant in grants)
        # The policy file's own exceptions keep their dates, so the instant decides.
        self.by_instant = bool(before.exceptions or after.exceptions)
        self.by_path = needs_paths(before, after)
        self.same_calendar = before.calendar is after.calendar
        self.listed: dict[str, bool] = {}
        self.known: dict[tuple[object, ...], tuple[Action, Action]] = {}

    def outcomes(self, row: ReplayRow) -> tuple[Action, Action]:
        key = self._key(row)
        found = self.known.get(key)
        if found is None:
            identity = Identity(group=row.group, source=IdentitySource.GIVEN, username=row.username,
                                year_group=row.year_group, school_class=row.school_class)  # fmt: skip
            found = self.known[key] = (
                decide(self.before, identity, row.host, row.path, row.at, self.before_grants).action,
                decide(self.after, identity, row.host, row.path, row.at, self.after_grants).action,
            )
        return found

    def _key(self, row: ReplayRow) -> tuple[object, ...]:
        listed = self.listed.get(row.host)
        if listed is None:
            listed = self.listed[row.host] = self.by_path or self._is_listed(row.host)
        at = row.at if row.at.tzinfo is not None else row.at.replace(tzinfo=self.before.zone)
        return (
            row.host if listed else None,
            row.path if self.by_path else None,
            row.group,
            row.year_group,
            row.username if self.by_user else None,
            row.school_class if self.by_class else None,
            self.before.calendar.period(at),
            None if self.same_calendar else self.after.calendar.period(at),
            at if self.by_instant else None,
        )

    def _is_listed(self, host: str) -> bool:
        return bool(
            self.before.domains.match(host)
            or self.after.domains.match(host)
            or not self.grant_domains.isdisjoint(suffixes(host))
        )


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
