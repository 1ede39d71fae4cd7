"""Where each recent unblock request stands, in the words its requester may see, for the block page.

The requester is shown what the request form shows them (`gateway/web/templates/unblock/earlier.html`): the
headteacher's note, or the officer's when the officer rejected, and the officer's question; never the note the
officer sends the headteacher with a forwarded request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway.store.models.grants import GrantRecord
from gateway.store.models.unblock_requests import UnblockRequest


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    number: int
    # The requester as the store keeps them: a roster username, else (None) the device's address.
    username: str | None
    client_ip: str
    host: str
    # "The whole site" was asked: the site's domain (without "www.") and every name under it.
    whole_site: bool
    asked_at: datetime
    # "new", "more_info", "forwarded", "approved" or "rejected".
    status: str
    # What the requester is told: the reason for the decision, or the officer's question.
    said: str | None
    # For an approved request: when its grant ends, and whether it was ended early.
    until: datetime | None = None
    ended_early: bool = False

    @property
    def site(self) -> str:
        return requested_site(self.host, whole_site=self.whole_site)


def requested_site(host: str, *, whole_site: bool) -> str:
    """The name a request covers: the site's domain (without "www.") for the whole site, else the host asked
    about."""
    if whole_site and host.startswith("www.") and host.count(".") >= 2:
        return host[4:]
    return host


def shown_to_requester(row: UnblockRequest) -> str | None:
    """The words a requester is given about their request (on the form, the block page and in the e-mail)."""
    if row.status == "approved":
        return row.decision_note or None
    if row.status == "rejected":
        return row.decision_note or row.officer_note or None
    if row.status == "more_info":
        return row.officer_note or None
    return None


def recent_outcomes(session: Session, since: datetime, limit: int, site: str | None = None) -> list[RequestOutcome]:
    """Requests asked since `since`, the newest `limit` of them, oldest first; with `site`, that school's only."""
    query = (
        select(UnblockRequest, GrantRecord.expires, GrantRecord.revoked_at)
        .outerjoin(GrantRecord, GrantRecord.id == UnblockRequest.grant_number)
        .where(UnblockRequest.created_at >= since)
    )
    if site is not None:
        query = query.where(or_(UnblockRequest.site == site, UnblockRequest.site.is_(None)))
    rows = session.execute(query.order_by(UnblockRequest.id.desc()).limit(limit))
    outcomes = [
        RequestOutcome(
            number=row.id, username=row.username, client_ip=row.client_ip, host=row.host,
            whole_site=row.extent == "site", asked_at=row.created_at, status=row.status,
            said=shown_to_requester(row), until=expires if row.status == "approved" else None,
            ended_early=revoked_at is not None,
        )  # fmt: skip
        for row, expires, revoked_at in rows
    ]
    outcomes.reverse()
    return outcomes
