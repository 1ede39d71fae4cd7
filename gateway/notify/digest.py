"""The weekly digest to the e-safety officer: the week's reports counted by category, class and group, and every
report still open in the officer's and the headteacher's queues, with links.

A digest covers the seven days before the day it goes out (`reports.alerts.digest_day` at `digest_time`, school
time). The `report_digest` row for those seven days is written before the mail is sent, so two console processes
never both send it; a mail that fails removes the row again and the next pass retries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from gateway.notify.alerts import NOTIFIER, person_of, report_link
from gateway.notify.mail import Mailer
from gateway.policy.alerts_model import Alerts
from gateway.store.audit import record
from gateway.store.models.reports import Report, ReportDigest

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
OPEN = ("open", "escalated")
# Open reports listed in the mail; past this the mail says how many more the console holds.
MAX_LISTED = 200


@dataclass(frozen=True, slots=True)
class Count:
    name: str
    reports: int
    hits: int


@dataclass(frozen=True, slots=True)
class OpenReport:
    id: int
    queue: str
    status: str
    kind: str
    created_at: datetime
    who: str
    category: str | None
    host: str | None
    link: str


@dataclass(frozen=True, slots=True)
class Digest:
    week_start: date
    by_category: list[Count]
    by_class: list[Count]
    by_group: list[Count]
    by_kind: list[Count]
    open_reports: list[OpenReport]
    open_total: int

    @property
    def total(self) -> int:
        return sum(c.reports for c in self.by_kind)


def week_bounds(week_start: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(week_start, time(0), tzinfo=zone)
    return start.astimezone(UTC), datetime.combine(week_start + timedelta(days=7), time(0), tzinfo=zone).astimezone(UTC)


def due_week(alerts: Alerts, zone: ZoneInfo, now: datetime) -> date:
    """The first day of the seven the latest digest due at `now` covers."""
    local = now.astimezone(zone)
    days_back = (local.weekday() - WEEKDAYS.index(alerts.digest_day)) % 7
    due_day = local.date() - timedelta(days=days_back)
    if days_back == 0 and local.time() < alerts.digest_time:
        due_day -= timedelta(days=7)
    return due_day - timedelta(days=7)


def _counts(store: Session, column: InstrumentedAttribute[Any], start: datetime, end: datetime,
            unnamed: str) -> list[Count]:  # fmt: skip
    rows = store.execute(select(column, func.count(), func.coalesce(func.sum(Report.hits), 0))
                         .where(Report.created_at >= start, Report.created_at < end)
                         .group_by(column)).all()  # fmt: skip
    counts = [Count(name if name is not None else unnamed, n, int(hits)) for name, n, hits in rows]
    return sorted(counts, key=lambda c: (-c.reports, c.name))


def build_digest(store: Session, week_start: date, zone: ZoneInfo, console_url: str) -> Digest:
    start, end = week_bounds(week_start, zone)
    open_filter = Report.status.in_(OPEN)
    open_total = store.scalar(select(func.count()).select_from(Report).where(open_filter)) or 0
    listed = store.scalars(select(Report).where(open_filter)
                           .order_by(Report.queue.desc(), Report.created_at).limit(MAX_LISTED))  # fmt: skip
    return Digest(
        week_start=week_start,
        by_category=_counts(store, Report.category, start, end, "(none)"),
        by_class=_counts(store, Report.school_class, start, end, "(no class)"),
        by_group=_counts(store, Report.group_name, start, end, "(no group)"),
        by_kind=_counts(store, Report.kind, start, end, "(none)"),
        open_reports=[OpenReport(r.id, r.queue, r.status, r.kind, r.created_at, person_of(r), r.category, r.host,
                                 report_link(console_url, r)) for r in listed],  # fmt: skip
        open_total=open_total,
    )


def _table(title: str, counts: list[Count]) -> list[str]:
    if not counts:
        return [f"{title}: none", ""]
    width = max(len(title) - 1, *(len(c.name) for c in counts))
    # "Times seen" counts the repeats an open report gathered (a pupil reloading a page is one report).
    return [f"{title}:".ljust(width + 2) + "  reports  times seen"] + [
        f"  {c.name.ljust(width)}  {c.reports:>7}  {c.hits:>10}" for c in counts
    ] + [""]


def digest_message(digest: Digest, zone: ZoneInfo) -> tuple[str, str]:
    last_day = digest.week_start + timedelta(days=6)
    span = f"{digest.week_start:%d %b} to {last_day:%d %b %Y}"
    subject = f"Weekly safeguarding digest, {span}: {digest.total} reports, {digest.open_total} open"
    lines = [f"Reports made by the school web gateway from {span}: {digest.total}.", ""]
    lines += _table("By kind", digest.by_kind)
    lines += _table("By category", digest.by_category)
    lines += _table("By class", digest.by_class)
    lines += _table("By group", digest.by_group)
    lines.append(f"Open reports now: {digest.open_total}")
    for queue in ("officer", "headteacher"):
        mine = [r for r in digest.open_reports if r.queue == queue]
        lines += ["", f"{'E-safety officer' if queue == 'officer' else 'Headteacher'}'s queue ({len(mine)}):"]
        lines += [f"  #{r.id} {r.created_at.astimezone(zone):%d %b %H:%M} {r.kind} {r.category or '-'} "
                  f"{r.host or ''} — {r.who} ({r.status})\n      {r.link}" for r in mine]  # fmt: skip
    if digest.open_total > len(digest.open_reports):
        lines += ["", f"… and {digest.open_total - len(digest.open_reports)} more in the console."]
    return subject, "\n".join(lines) + "\n"


def send_digest(sessions: Callable[[], Session], mailer: Mailer, recipients: list[str], week_start: date,
                zone: ZoneInfo, console_url: str, now: datetime, actor: str = NOTIFIER) -> bool:  # fmt: skip
    """Send the digest of the seven days from `week_start` unless it has been sent. True when this call sent it;
    OSError or SMTPException (and no record of it) when the mail could not go."""
    try:
        with sessions() as store, store.begin():
            store.add(ReportDigest(week_start=week_start, sent_at=now, recipients=", ".join(recipients)))
    except IntegrityError:
        return False
    try:
        with sessions() as store:
            subject, body = digest_message(build_digest(store, week_start, zone, console_url), zone)
        mailer.send(", ".join(recipients), subject, body)
    except BaseException:
        with sessions() as store, store.begin():
            store.execute(delete(ReportDigest).where(ReportDigest.week_start == week_start))
        raise
    with sessions() as store, store.begin():
        record(store, actor, "report_digest_sent", target=f"report-digest:{week_start}", detail={"to": recipients})
    return True


def send_digest_if_due(sessions: Callable[[], Session], mailer: Mailer, alerts: Alerts, zone: ZoneInfo,
                       console_url: str, now: datetime) -> date | None:  # fmt: skip
    """The week whose digest this call sent, or None (not due, sent already, or nobody to send it to)."""
    if not alerts.digest or not alerts.recipients:
        return None
    week = due_week(alerts, zone, now)
    with sessions() as store:
        if store.get(ReportDigest, week) is not None:
            return None
    return week if send_digest(sessions, mailer, alerts.recipients, week, zone, console_url, now) else None

