"""Unblock requests in the store: asked, triaged by the officer, decided by the headteacher.

Each step moves a request only from the states it may come from, so two staff acting at once cannot both decide
it; an approval adds its grant (gateway.store.grants) in the same transaction. Each step raises the `requests`
counter in its transaction, so every proxy's block page learns the outcome within seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gateway.policy.model import ExceptionGrant
from gateway.store.grants import add_grant
from gateway.store.models.access_log import AccessLogEntry
from gateway.store.models.unblock_requests import UnblockRequest
from gateway.store.sites import within
from gateway.store.versions import REQUESTS, bump

EXTENTS = ("page", "site")
AUDIENCES = ("me", "class", "year", "group", "school")
DURATIONS = ("lesson", "today", "week", "term", "permanent")
# The officer's queue holds new requests and those waiting for more information; the headteacher's, forwarded ones.
OFFICER_QUEUE = ("new", "more_info")
HEAD_QUEUE = ("forwarded",)


class StaleRequest(Exception):
    """The request was already moved on by someone else (or never existed)."""


@dataclass(frozen=True)
class Asked:
    """A request as the form carries it: who and what from the signed token, the rest from the requester."""

    username: str | None
    display_name: str
    client_ip: str
    group_name: str
    school_class: str | None
    year_group: int | None
    url: str
    host: str
    rule: str | None
    list_name: str | None
    reference: str | None
    why: str
    extent: str
    audience: str
    duration: str


def add_request(session: Session, asked: Asked, now: datetime, site: str | None = None) -> UnblockRequest:
    row = UnblockRequest(created_at=now, status="new", site=site, **asked.__dict__)
    session.add(row)
    session.flush()
    bump(session, REQUESTS)
    return row


def queue(session: Session, states: tuple[str, ...], allowed_sites: tuple[str, ...] = ()) -> list[UnblockRequest]:
    """Requests in these states, oldest first, of the given sites (every site for none)."""
    return list(session.scalars(select(UnblockRequest).where(UnblockRequest.status.in_(states),
                                                             *within(UnblockRequest.site, allowed_sites))
                                .order_by(UnblockRequest.created_at, UnblockRequest.id)))  # fmt: skip


def requests_by(session: Session, *, username: str | None, client_ip: str, limit: int = 10) -> list[UnblockRequest]:
    """A requester's latest requests: by username when known, else those typed on this device."""
    where = (UnblockRequest.username == username) if username else (
        (UnblockRequest.username.is_(None)) & (UnblockRequest.client_ip == client_ip))
    return list(session.scalars(select(UnblockRequest).where(where)
                                .order_by(UnblockRequest.id.desc()).limit(limit)))  # fmt: skip


def asked_since(session: Session, client_ip: str, since: datetime) -> int:
    """How many requests this device sent since `since` (a pupil sending dozens floods the officer's queue)."""
    return session.scalar(select(func.count(UnblockRequest.id)).where(UnblockRequest.client_ip == client_ip,
                                                                      UnblockRequest.created_at >= since)) or 0


def add_information(session: Session, number: int, *, username: str | None, client_ip: str, text: str,
                    now: datetime) -> UnblockRequest:  # fmt: skip
    """The requester answers the officer's question: the answer joins their reason and the request goes back to
    the officer's queue. Only the requester may answer (by username, or on the device a typed name asked from)."""
    row = session.get(UnblockRequest, number)
    mine = row is not None and (row.username == username if row.username else
                                (username is None and row.client_ip == client_ip))
    if row is None or not mine:
        raise StaleRequest(f"request {number} is not yours")
    stamp = now.strftime("%Y-%m-%d %H:%M UTC")
    return _move(session, number, ("more_info",), status="new", why=f"{row.why}\n\nAdded {stamp}: {text}")


def recent_blocks(session: Session, request: UnblockRequest, now: datetime, days: int = 7) -> list[AccessLogEntry]:
    """The requester's blocked requests to the same host in the last `days` (by username, else by address)."""
    who = (AccessLogEntry.username == request.username) if request.username else (
        AccessLogEntry.client_ip == request.client_ip)
    return list(session.scalars(
        select(AccessLogEntry).where(who, AccessLogEntry.host == request.host, AccessLogEntry.action == "block",
                                     AccessLogEntry.at >= now - timedelta(days=days))
        .order_by(AccessLogEntry.at.desc()).limit(50)))  # fmt: skip


def _move(session: Session, number: int, came_from: tuple[str, ...], **values: object) -> UnblockRequest:
    moved = session.execute(update(UnblockRequest).where(UnblockRequest.id == number,
                                                         UnblockRequest.status.in_(came_from))
                            .values(**values)).rowcount  # fmt: skip
    if not moved:
        raise StaleRequest(f"request {number} is no longer waiting for this step")
    bump(session, REQUESTS)
    row = session.get(UnblockRequest, number)
    assert row is not None
    session.refresh(row)
    return row


def officer_step(session: Session, number: int, *, status: str, by: str, note: str, now: datetime,
                 recommendation: str | None = None) -> UnblockRequest:  # fmt: skip
    """Reject, ask for more information, or forward to the headteacher with a recommendation."""
    if status not in ("rejected", "more_info", "forwarded"):
        raise ValueError(f"not an officer's step: {status}")
    return _move(session, number, OFFICER_QUEUE, status=status, officer_by=by, officer_at=now, officer_note=note,
                 recommendation=recommendation)  # fmt: skip


def reject(session: Session, number: int, *, by: str, note: str, now: datetime) -> UnblockRequest:
    return _move(session, number, HEAD_QUEUE, status="rejected", decided_by=by, decided_at=now, decision_note=note)


def approve(session: Session, number: int, grant: ExceptionGrant, *, by: str, note: str,
            now: datetime) -> tuple[UnblockRequest, int]:  # fmt: skip
    """Mark the request approved and add its grant, in the caller's transaction."""
    row = _move(session, number, HEAD_QUEUE, status="approved", decided_by=by, decided_at=now, decision_note=note)
    row.grant_number = add_grant(session, grant, created_by=by, now=now, site=row.site)
    return row, row.grant_number
