"""A class teacher's day: each pupil of their classes with today's blocked and flagged requests.

A pupil here is an active roster entry of one of the classes asked for (that name at that class's school: a
trust's schools each have a 5B), with no staff role and with a year group (every pupil has one). That is the
converse of `gateway.store.permissions.is_staff`, so a member of staff whose roster row names a class (a teaching
assistant attached to 5B, a class set of staff laptops) is never shown to a teacher. Rows are matched to pupils
by username, so a device that was known only by its class (a shared class iPad with nobody signed in) names no
pupil and is not listed.

Two queries over the access log, both ranges of `ix_access_log_username_at` (one per pupil): the counts grouped
by pupil and action, and each pupil's newest attempts, numbered per pupil so no more than `limit` come back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.store.models.access_log import AccessLogEntry as Log
from gateway.store.models.people import PersonRecord
from gateway.store.sites import within
from gateway.store.teaching import Taught, in_classes

ATTEMPTS = ("block", "flag")
DETAIL_LIMIT = 50


@dataclass(frozen=True)
class Attempt:
    """One blocked or flagged request: where and why, not the page or search words (those stay in the officer's
    log: a flag can be a safeguarding matter for the DSL, not the class teacher)."""

    at: datetime
    host: str
    action: str
    rule: str | None
    reason: str | None


@dataclass
class PupilDay:
    username: str
    display_name: str
    school_class: str
    site: str
    blocked: int = 0
    flagged: int = 0
    # Newest first, at most the limit asked for; `blocked + flagged` may be more.
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def more(self) -> int:
        """Attempts counted but not listed."""
        return self.blocked + self.flagged - len(self.attempts)


def local_day(day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """The instants a school-local day starts and ends (23 or 25 hours long on the clock-change days)."""
    return datetime.combine(day, time(0), zone), datetime.combine(day + timedelta(days=1), time(0), zone)


def pupils_of(session: Session, classes: Sequence[Taught]) -> list[PersonRecord]:
    return list(session.scalars(
        select(PersonRecord)
        .where(in_classes(classes), PersonRecord.active, PersonRecord.roles == "",
               PersonRecord.year_group.is_not(None))
        .order_by(PersonRecord.school_class, PersonRecord.site, PersonRecord.display_name, PersonRecord.username)
    ))  # fmt: skip


def class_day(session: Session, classes: Sequence[Taught], day: date, zone: tzinfo,
              limit: int = DETAIL_LIMIT, sites: tuple[str, ...] = ()) -> list[PupilDay]:  # fmt: skip
    """Every pupil of `classes` (those with nothing that day too, at zero), in class then name order; only their
    requests logged at `sites` (every site for none)."""
    pupils = {p.username: PupilDay(p.username, p.display_name, p.school_class or "", p.site or "")
              for p in pupils_of(session, classes)}
    if not pupils:
        return []
    start, end = local_day(day, zone)
    that_day = (Log.username.in_(list(pupils)), Log.at >= start, Log.at < end, Log.action.in_(ATTEMPTS),
                *within(Log.site, sites))

    counts = select(Log.username, Log.action, func.count()).where(*that_day).group_by(Log.username, Log.action)
    for username, action, n in session.execute(counts):
        if action == "block":
            pupils[username].blocked = n
        else:
            pupils[username].flagged = n

    numbered = select(
        Log.username, Log.at, Log.host, Log.action, Log.rule, Log.reason,
        func.row_number().over(partition_by=Log.username, order_by=(Log.at.desc(), Log.id.desc())).label("n"),
    ).where(*that_day).subquery()  # fmt: skip
    newest = select(numbered).where(numbered.c.n <= limit).order_by(numbered.c.username, numbered.c.n)
    for row in session.execute(newest):
        pupils[row.username].attempts.append(Attempt(row.at, row.host, row.action, row.rule, row.reason))
    return list(pupils.values())
