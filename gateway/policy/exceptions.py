"""Scoped, time-limited exceptions, compiled for the engine.

Exceptions come from the policy file and, with the unblock workflow, from the store; both become an
`ExceptionSet`, which can be swapped on its own without recompiling the lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.decisions.types import Action, PeriodKind
from gateway.identity.types import Identity
from gateway.policy.bans import BanSet
from gateway.policy.model import ExceptionGrant


@dataclass(frozen=True, slots=True)
class CompiledGrant:
    id: str
    action: Action
    reason: str
    mask: int
    domains: frozenset[str]
    starts: datetime | None
    expires: datetime
    groups: frozenset[str] | None
    users: frozenset[str] | None
    year_groups: frozenset[int] | None
    classes: frozenset[str] | None
    periods: frozenset[PeriodKind] | None
    approved_by: str | None

    def applies_to(self, identity: Identity, period: PeriodKind, instant: datetime) -> bool:
        if instant >= self.expires or (self.starts is not None and instant < self.starts):
            return False
        return (
            (self.groups is None or identity.group in self.groups)
            and (self.users is None or identity.username in self.users)
            and (self.year_groups is None or identity.year_group in self.year_groups)
            and (self.classes is None or identity.school_class in self.classes)
            and (self.periods is None or period in self.periods)
        )

    def covers(self, suffixes: Sequence[str], hit_mask: int) -> str | None:
        """The list or domain through which this grant covers the host, if it does."""
        if self.mask & hit_mask:
            return "list"
        return next((s for s in suffixes if s in self.domains), None)


def _frozen[T](values: Iterable[T] | None) -> frozenset[T] | None:
    return None if values is None else frozenset(values)


def compile_grant(grant: ExceptionGrant, bits: Mapping[str, int], zone) -> CompiledGrant:
    def aware(moment: datetime | None) -> datetime | None:
        if moment is None or moment.tzinfo is not None:
            return moment
        return moment.replace(tzinfo=zone)

    return CompiledGrant(
        id=grant.id,
        action=Action(grant.action),
        reason=grant.reason,
        mask=sum(bits[name] for name in grant.lists),
        domains=frozenset(grant.domains),
        starts=aware(grant.starts),
        expires=aware(grant.expires),
        groups=_frozen(grant.groups),
        users=_frozen(grant.users),
        year_groups=_frozen(grant.year_groups),
        classes=_frozen(grant.classes),
        periods=_frozen(grant.periods),
        approved_by=grant.approved_by,
    )


@dataclass(frozen=True, slots=True)
class ExceptionSet:
    grants: tuple[CompiledGrant, ...] = ()
    # The supervised-only bans in force (None when there are none), handed to the engine with the grants so every
    # decision, of a request or a connection, sees them.
    bans: BanSet | None = None

    def __bool__(self) -> bool:
        return bool(self.grants)

    def __add__(self, other: ExceptionSet) -> ExceptionSet:
        return ExceptionSet(self.grants + other.grants, other.bans or self.bans)


EMPTY = ExceptionSet()
