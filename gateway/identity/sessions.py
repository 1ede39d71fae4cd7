"""Identity sessions in the store: RADIUS and portal bindings of a client IP to a person, and failed sign-ins.

Every writer (the RADIUS listener, the portal's Flask views, the proxy's poller ending stale sessions) goes
through these functions, so a binding survives a proxy restart and `gateway whois` sees what the proxy sees.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gateway.identity.resolver import BOUND_SOURCES, Binding
from gateway.identity.types import IdentitySource
from gateway.store.models.sessions import IdentitySession, SignInFailure


def start_session(
    session: Session,
    *,
    client_ip: str,
    source: IdentitySource,
    username: str,
    now: datetime,
    mac: str | None = None,
    radius_session_id: str | None = None,
    nas: str | None = None,
) -> IdentitySession:
    """Bind `client_ip` to `username` from `source`, ending whatever that source had bound there."""
    end_sessions(session, client_ip=client_ip, source=source, reason="replaced", now=now)
    row = IdentitySession(
        client_ip=client_ip,
        source=source.value,
        username=username.lower(),
        mac=mac,
        started_at=now,
        last_seen_at=now,
        radius_session_id=radius_session_id,
        nas=nas,
    )
    session.add(row)
    session.flush()
    return row


def live_session(session: Session, client_ip: str, source: IdentitySource) -> IdentitySession | None:
    return session.scalar(
        select(IdentitySession)
        .where(IdentitySession.ended_at.is_(None), IdentitySession.client_ip == client_ip,
               IdentitySession.source == source.value)
        .order_by(IdentitySession.id.desc())
    )


def touch_session(session: Session, row_id: int, now: datetime) -> None:
    session.execute(
        update(IdentitySession)
        .where(IdentitySession.id == row_id, IdentitySession.last_seen_at < now)
        .values(last_seen_at=now)
    )


def end_sessions(
    session: Session,
    *,
    reason: str,
    now: datetime,
    client_ip: str | None = None,
    source: IdentitySource | None = None,
    row_ids: list[int] | None = None,
    radius_session_id: str | None = None,
    nas: str | None = None,
) -> int:
    """End live sessions matching every given filter; returns how many ended."""
    stmt = update(IdentitySession).where(IdentitySession.ended_at.is_(None))
    if client_ip is not None:
        stmt = stmt.where(IdentitySession.client_ip == client_ip)
    if source is not None:
        stmt = stmt.where(IdentitySession.source == source.value)
    if row_ids is not None:
        stmt = stmt.where(IdentitySession.id.in_(row_ids))
    if radius_session_id is not None:
        stmt = stmt.where(IdentitySession.radius_session_id == radius_session_id)
    if nas is not None:
        stmt = stmt.where(IdentitySession.nas == nas)
    return session.execute(stmt.values(ended_at=now, end_reason=reason)).rowcount or 0


def live_bindings(session: Session) -> dict[IdentitySource, dict[str, Binding]]:
    """Every live session, newest per (source, IP)."""
    out: dict[IdentitySource, dict[str, Binding]] = {s: {} for s in BOUND_SOURCES}
    rows = session.scalars(
        select(IdentitySession).where(IdentitySession.ended_at.is_(None)).order_by(IdentitySession.id)
    )
    for r in rows:
        source = IdentitySource(r.source)
        if source in out:
            out[source][r.client_ip] = Binding(
                r.client_ip, source, r.username, r.started_at, r.last_seen_at, r.mac, r.id
            )
    return out


def record_failure(session: Session, *, client_ip: str, username: str | None, now: datetime) -> None:
    session.add(SignInFailure(at=now, client_ip=client_ip, username=username.lower() if username else None))


def recent_failures(session: Session, *, now: datetime, window: timedelta, client_ip: str | None = None,
                    username: str | None = None) -> int:
    stmt = select(func.count(SignInFailure.id)).where(SignInFailure.at > now - window)
    if client_ip is not None:
        stmt = stmt.where(SignInFailure.client_ip == client_ip)
    if username is not None:
        stmt = stmt.where(SignInFailure.username == username.lower())
    return session.scalar(stmt) or 0
