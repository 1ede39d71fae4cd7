"""Two-key permissions: the headteacher grants a person's personal-account access, the officer confirms the
security controls; the store grant every proxy follows is written only when the second key turns, and ended when
either key holder revokes.

A permission belongs to the person's school, as does the grant it writes: only that school's gateway follows it.

Staff never get lesson time ("staff members will not access social media platforms during lesson times"): a
permission for a member of staff always excludes it, whatever the form said.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.decisions.types import PeriodKind
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.model import ExceptionGrant
from gateway.policy.store_grants import compile_store_grants
from gateway.store.grants import add_grant, end_grant
from gateway.store.models.people import PersonRecord
from gateway.store.models.permissions import PersonalPermission
from gateway.store.sites import within

OUTSIDE_LESSONS = [kind for kind in PeriodKind if kind is not PeriodKind.LESSON]


def is_staff(person: PersonRecord) -> bool:
    """Staff as the roster shows them, whatever the school calls their filter group: anyone with a staff role or
    with no year group (every pupil has one). A pupil wrongly left without a year group is treated
    as staff here, which only ever takes lesson time away."""
    return bool(person.roles) or person.year_group is None


class PermissionRefused(ValueError):
    """A permission that may not be granted, confirmed or revoked, and why."""


def grant_permission(session: Session, compiled: CompiledPolicy, *, username: str, lists: list[str],
                     domains: list[str], expires: datetime, exclude_lessons: bool, reason: str, by: str,
                     now: datetime | None = None, sites: tuple[str, ...] = ()) -> PersonalPermission:  # fmt: skip
    """The headteacher's key: a permission waiting for the officer's confirmation (nothing is let through yet), for
    someone on the roster of one of `sites` (every site for none; someone elsewhere is as unknown as nobody)."""
    now = now or datetime.now(UTC)
    person = session.scalar(select(PersonRecord).where(PersonRecord.username == username, PersonRecord.active,
                                                       *within(PersonRecord.site, sites)))  # fmt: skip
    if person is None:
        raise PermissionRefused(f"{username!r} is not in the roster")
    if expires <= now:
        raise PermissionRefused("the permission must end in the future")
    if not reason.strip():
        raise PermissionRefused("give the reason for the permission")
    row = PersonalPermission(
        site=person.site, created_at=now, username=username, group_name=person.group_name, lists=json.dumps(lists),
        domains=json.dumps(domains), expires=expires,
        exclude_lessons=exclude_lessons or is_staff(person), reason=reason.strip(), granted_by=by,
    )  # fmt: skip
    _check(compiled, _as_grant(row, "permission-new"))
    session.add(row)
    session.flush()
    return row


def confirm(session: Session, compiled: CompiledPolicy, number: int, *, by: str, note: str,
            now: datetime | None = None) -> int:  # fmt: skip
    """The officer's key: the grant goes live; returns the store grant's number."""
    now = now or datetime.now(UTC)
    row = _open(session, number)
    if row.confirmed_by is not None:
        raise PermissionRefused(f"permission {number} is already confirmed")
    if row.expires <= now:
        raise PermissionRefused(f"permission {number} has expired")
    if not note.strip():
        raise PermissionRefused("say which security controls are in place")
    grant = _as_grant(row, f"permission-{number}")
    # Checked again: the policy may have marked a list unliftable since the headteacher granted it.
    _check(compiled, grant)
    row.grant_number = add_grant(session, grant, created_by=by, now=now, site=row.site)
    row.confirmed_by, row.confirmed_at, row.confirm_note = by, now, note.strip()
    return row.grant_number


def revoke(session: Session, number: int, *, by: str, now: datetime | None = None) -> None:
    """Either key holder ends the permission (and its grant, if it was live)."""
    now = now or datetime.now(UTC)
    row = _open(session, number)
    if row.grant_number is not None:
        end_grant(session, row.grant_number, by=by, now=now)
    row.revoked_by, row.revoked_at = by, now


def permissions(session: Session, sites: tuple[str, ...] = ()) -> list[PersonalPermission]:
    """The permissions of `sites` (every site for none), newest first."""
    return list(session.scalars(select(PersonalPermission).where(*within(PersonalPermission.site, sites))
                                .order_by(PersonalPermission.id.desc())))  # fmt: skip


def lists_of(row: PersonalPermission) -> list[str]:
    return list(json.loads(row.lists))


def domains_of(row: PersonalPermission) -> list[str]:
    return list(json.loads(row.domains))


def _open(session: Session, number: int) -> PersonalPermission:
    row = session.get(PersonalPermission, number)
    if row is None:
        raise LookupError(number)
    if row.revoked_at is not None:
        raise PermissionRefused(f"permission {number} was revoked by {row.revoked_by}")
    return row


def _as_grant(row: PersonalPermission, name: str) -> ExceptionGrant:
    try:
        return ExceptionGrant(
            id=name, users=[row.username], lists=lists_of(row), domains=domains_of(row),
            periods=OUTSIDE_LESSONS if row.exclude_lessons else None, expires=row.expires,
            reason=row.reason, approved_by=row.granted_by,
        )  # fmt: skip
    except ValidationError as exc:
        raise PermissionRefused("; ".join(error["msg"] for error in exc.errors())) from None


def _check(compiled: CompiledPolicy, grant: ExceptionGrant) -> None:
    _, problems = compile_store_grants(compiled, [grant])
    if problems:
        raise PermissionRefused("; ".join(problems))
