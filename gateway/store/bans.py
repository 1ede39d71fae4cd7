"""Supervised-only bans and the supervised sessions a teacher starts, in the store.

A person has at most one ban in force: banning someone already banned keeps that ban and moves its end to the later
of the two (no end is latest), so lifting it always lifts the person. Every change raises the `bans` counter
(`gateway.store.versions`) in the caller's transaction, so each proxy reads a consistent set within its polling
interval. Nothing here commits or audits: the caller does both, in the same transaction.

Whether a ban or a session is still running is decided against `now` here and again by the proxy at each decision,
so a ban ends and a supervised session runs out with no store change.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from gateway.store.models.circumvention import Ban, SupervisedSession
from gateway.store.versions import bump

BANS = "bans"


class StaleBan(ValueError):
    """The ban or session was lifted, ended or ran out meanwhile (by someone else, or in another tab)."""


class BanInForce(NamedTuple):
    username: str
    ban_id: int
    # None: until the headteacher lifts it.
    ends_at: datetime | None
    # The end of the running supervised session, if a teacher has started one.
    supervised_until: datetime | None


def normal_username(username: str) -> str:
    """Usernames as the roster and every identity source keep them."""
    return username.strip().lower()


def _ban_running(now: datetime) -> ColumnElement[bool]:
    return (Ban.lifted_at.is_(None)) & (Ban.starts_at <= now) & or_(Ban.ends_at.is_(None), Ban.ends_at > now)


def _session_running(now: datetime) -> ColumnElement[bool]:
    return (SupervisedSession.ended_at.is_(None)) & (SupervisedSession.started_at <= now) & (
        SupervisedSession.ends_at > now
    )


def ban_in_force(session: Session, username: str, now: datetime) -> Ban | None:
    return session.scalar(
        select(Ban).where(Ban.username == normal_username(username), _ban_running(now)).order_by(Ban.id).limit(1)
    )


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return None if a is None or b is None else max(a, b)


def ban_person(
    session: Session,
    *,
    username: str,
    display_name: str | None,
    reason: str,
    created_by: str,
    now: datetime,
    incident_id: int | None = None,
    ends_at: datetime | None = None,
    site: str | None = None,
) -> Ban:
    """Ban a person from `now` until `ends_at` (None: until lifted); a person already banned keeps their ban, which
    ends at the later of the two ends."""
    name = normal_username(username)
    if not name:
        raise ValueError("a ban needs a username: it follows the person, not a device")
    if ends_at is not None and ends_at <= now:
        raise ValueError("a ban must end after it starts")
    existing = ban_in_force(session, name, now)
    if existing is not None:
        later = _later(existing.ends_at, ends_at)
        if later != existing.ends_at:
            existing.ends_at = later
            session.flush()
            bump(session, BANS)
        return existing
    ban = Ban(
        username=name, display_name=display_name, incident_id=incident_id, reason=reason, created_at=now,
        created_by=created_by, starts_at=now, ends_at=ends_at, site=site,
    )  # fmt: skip
    session.add(ban)
    session.flush()
    bump(session, BANS)
    return ban


def _running_ban(session: Session, ban_id: int, now: datetime) -> Ban:
    ban = session.get(Ban, ban_id)
    if ban is None:
        raise StaleBan(f"there is no ban {ban_id}")
    if ban.lifted_at is not None or (ban.ends_at is not None and ban.ends_at <= now):
        raise StaleBan(f"ban {ban_id} is no longer in force")
    return ban


def lift_ban(session: Session, ban_id: int, *, by: str, note: str, now: datetime) -> Ban:
    """Lift a ban in force; a supervised session under it ends with it."""
    ban = _running_ban(session, ban_id, now)
    # Only from "not lifted", so two people lifting at once cannot both record it.
    lifted = session.execute(
        update(Ban).where(Ban.id == ban_id, Ban.lifted_at.is_(None)).values(lifted_at=now, lifted_by=by, lift_note=note)
    ).rowcount
    if not lifted:
        raise StaleBan(f"ban {ban_id} was lifted meanwhile")
    session.execute(
        update(SupervisedSession)
        .where(SupervisedSession.ban_id == ban_id, SupervisedSession.ended_at.is_(None),
               SupervisedSession.ends_at > now)
        .values(ended_at=now)
    )
    bump(session, BANS)
    session.refresh(ban)
    return ban


def set_ban_end(session: Session, ban_id: int, *, ends_at: datetime | None, by: str, now: datetime) -> Ban:
    """Move the end of a ban in force (None: until lifted). `by` is for the caller's audit row: the ban keeps who
    made it, and the audit trail who changed it."""
    ban = _running_ban(session, ban_id, now)
    if ends_at is not None and ends_at <= now:
        raise ValueError("to end a ban now, lift it")
    ban.ends_at = ends_at
    session.flush()
    bump(session, BANS)
    return ban


def start_supervision(
    session: Session, *, username: str, teacher: str, ends_at: datetime, note: str | None, now: datetime
) -> SupervisedSession:
    """A teacher's supervised session for a banned person, from now until `ends_at` (ValueError: not banned)."""
    name = normal_username(username)
    if ends_at <= now:
        raise ValueError("a supervised session must end after it starts")
    ban = ban_in_force(session, name, now)
    if ban is None:
        raise ValueError(f"{name} is not banned: there is nothing to supervise")
    supervision = SupervisedSession(
        ban_id=ban.id, username=name, teacher=teacher, started_at=now, ends_at=ends_at, note=note or None
    )
    session.add(supervision)
    session.flush()
    bump(session, BANS)
    return supervision


def end_supervision(session: Session, supervision_id: int, *, by: str, now: datetime) -> SupervisedSession:
    """End a running supervised session early; the ban applies again at once. `by` is for the caller's audit row."""
    ended = session.execute(
        update(SupervisedSession)
        .where(SupervisedSession.id == supervision_id, _session_running(now))
        .values(ended_at=now)
    ).rowcount
    if not ended:
        raise StaleBan(f"supervised session {supervision_id} is not running")
    bump(session, BANS)
    supervision = session.get(SupervisedSession, supervision_id)
    assert supervision is not None
    session.refresh(supervision)
    return supervision


def supervisions_running(session: Session, now: datetime) -> list[SupervisedSession]:
    return list(session.scalars(select(SupervisedSession).where(_session_running(now)).order_by(SupervisedSession.id)))


def bans_in_force(session: Session, now: datetime) -> list[BanInForce]:
    """Every ban in force at `now`, with the end of its running supervised session if any: what the proxies hold."""
    bans = session.scalars(select(Ban).where(_ban_running(now)).order_by(Ban.id)).all()
    supervised: dict[int, datetime] = {}
    for supervision in supervisions_running(session, now):
        ends = supervised.get(supervision.ban_id)
        supervised[supervision.ban_id] = supervision.ends_at if ends is None else max(ends, supervision.ends_at)
    return [BanInForce(ban.username, ban.id, ban.ends_at, supervised.get(ban.id)) for ban in bans]
