"""Grants in the store: add, end early, read the ones in force.

Each change raises the `grants` counter (`gateway.store.versions`) in the same transaction, so a proxy that sees
the counter move reads a consistent set. A grant's scope is checked as an `ExceptionGrant` (the policy file's
exceptions) when it is added.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from gateway.policy.model import ExceptionGrant
from gateway.store.models.grants import GrantRecord
from gateway.store.versions import GRANTS, bump

# The fields of an ExceptionGrant kept in `GrantRecord.scope`.
SCOPE_FIELDS = ("groups", "users", "year_groups", "classes", "periods", "lists", "domains", "action")


@dataclass(frozen=True, slots=True)
class StoredGrant:
    """A grant as the store holds it: its number, and the exception it stands for."""

    number: int
    grant: ExceptionGrant
    created_by: str
    # The school whose gateway follows it; None: every school's.
    site: str | None = None


def grant_id(number: int) -> str:
    return f"grant-{number}"


def add_grant(session: Session, grant: ExceptionGrant, *, created_by: str, now: datetime | None = None,
              site: str | None = None) -> int:  # fmt: skip
    """Store a checked grant (its `id` is replaced by the store's number); returns that number."""
    scope = grant.model_dump(mode="json", include=set(SCOPE_FIELDS))
    record = GrantRecord(
        scope=json.dumps(scope, sort_keys=True),
        starts=grant.starts,
        expires=grant.expires,
        reason=grant.reason,
        approved_by=grant.approved_by,
        created_at=now or datetime.now(UTC),
        created_by=created_by,
        site=site,
    )
    session.add(record)
    session.flush()
    bump(session, GRANTS)
    return record.id


def end_grant(session: Session, number: int, *, by: str, now: datetime | None = None) -> bool:
    """End a grant early; False when there is no such grant in force."""
    ended = session.execute(
        update(GrantRecord)
        .where(GrantRecord.id == number, GrantRecord.revoked_at.is_(None))
        .values(revoked_at=now or datetime.now(UTC), revoked_by=by)
    ).rowcount
    if ended:
        bump(session, GRANTS)
    return bool(ended)


def grants_in_force(session: Session, now: datetime, site: str | None = None) -> tuple[list[StoredGrant], list[str]]:
    """Grants not ended and not yet expired (those that start later included, so they begin on time), and what
    was wrong with any row that no longer reads as a grant (it is left out, never widened). With `site`, only that
    school's grants and those made for no school in particular: a trust's gateways share one store."""
    query = select(GrantRecord).where(GrantRecord.revoked_at.is_(None), GrantRecord.expires > now)
    if site is not None:
        query = query.where(or_(GrantRecord.site == site, GrantRecord.site.is_(None)))
    rows = session.scalars(query.order_by(GrantRecord.id))
    grants, problems = [], []
    for row in rows:
        try:
            grants.append(StoredGrant(row.id, _as_grant(row), row.created_by, row.site))
        except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
            problems.append(f"{grant_id(row.id)}: unreadable: {str(exc).splitlines()[0]}")
    return grants, problems


def _as_grant(row: GrantRecord) -> ExceptionGrant:
    scope: dict[str, Any] = json.loads(row.scope)
    return ExceptionGrant(
        id=grant_id(row.id), starts=row.starts, expires=row.expires, reason=row.reason,
        approved_by=row.approved_by, **scope,
    )  # fmt: skip
