"""Immediate e-mail to the e-safety officer for high-risk reports (self-harm, suicide, extremism, child abuse).

The store marks such a report `alert_state = "due"` as it makes it. Each pass here claims due reports one at a
time; the claim and the dedup check run in one transaction that first raises the `report_alerts` counter, which
every notifier must do too, so two console processes (or the console and `gateway reports alerts` from cron)
take turns: a report is mailed once, and a second report of the same person and category within the window is
marked "skipped" (it stays in the queue and the digest) rather than mailed again.

A claimed report is "sending" until the mail server has taken the mail, then "sent". A mail that cannot be sent
marks its report "failed", counted in `alert_attempts`; failed reports, and any left "sending" by a process that
died mid-send, are claimed again on a later pass, before newer ones, so nothing is lost while the mail server is
down or the console restarts (at worst an alert goes twice). Nothing here runs in
the proxy or blocks a page: it runs in a thread of the console, or from cron.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from gateway.notify.mail import Mailer
from gateway.policy.alerts_model import Alerts
from gateway.store.audit import record
from gateway.store.models.reports import Report
from gateway.store.reports import matches_of
from gateway.store.versions import bump

# The counter every claim raises first: its row lock (PostgreSQL) or the write lock (SQLite) puts claims in turn.
CLAIMS = "report_alerts"
# Who the audit trail says mailed an alert or digest, when the console's thread did (the CLI names its user).
NOTIFIER = "gateway:notifier"
# Reports claimed in one pass; the rest wait a few seconds for the next.
BATCH = 50
WAITING = ("due", "failed")
# A claim older than this that never became "sent" or "failed" belongs to a notifier that died mid-send.
STALE_CLAIM = timedelta(minutes=5)

CATEGORY_WORDS = {
    "self_harm": "self-harm",
    "suicide": "suicide",
    "extremism": "extremism",
    "terrorism": "terrorism",
    "child_abuse": "child sexual abuse material",
}
KIND_WORDS = {
    "page": "a page whose text matched phrases in this category",
    "search": "a search for terms in this category",
    "flagged_site": "a visit to a site on a list the policy flags",
    "illegal_attempt": "an attempt to reach a site on an illegal-content list",
    "person": "a page someone reported with \"Report this page\"",
    "contact": "a contact attempt through personal social media",
}


@dataclass(frozen=True, slots=True)
class AlertPass:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    # Why the last send failed, for the log and the CLI.
    error: str | None = None


def person_of(report: Report) -> str:
    who = report.display_name or report.username
    if who and report.username and report.display_name:
        who = f"{report.display_name} ({report.username})"
    return who or f"someone not signed in, at {report.client_ip or 'an unknown address'}"


def report_link(console_url: str, report: Report) -> str:
    return f"{console_url.rstrip('/')}/reports/{report.id}"


def alert_message(report: Report, console_url: str, zone: ZoneInfo, dedup_hours: int) -> tuple[str, str]:
    """Subject and body. Only the matched terms, never the page's text: the mail may be read on a phone."""
    category = CATEGORY_WORDS.get(report.category or "", (report.category or "unknown").replace("_", " "))
    who = person_of(report)
    subject = f"Safeguarding alert: {category} — {who}"
    lines = [
        f"A high-risk report from the school web gateway: {KIND_WORDS.get(report.kind, report.kind)}.",
        "",
        f"Who:       {who}",
        f"Class:     {report.school_class or '-'}   Year: {report.year_group if report.year_group is not None else '-'}"
        f"   Group: {report.group_name or '-'}",
        f"Device:    {report.device or '-'} ({report.client_ip or 'address unknown'})",
        f"When:      {report.created_at.astimezone(zone):%A %d %B %Y, %H:%M}",
        f"Category:  {category}" + (f" (score {report.score})" if report.score is not None else ""),
    ]
    if report.search_terms:
        lines.append(f"Searched:  {report.search_terms}")
    if report.url:
        lines.append(f"Address:   {report.url}")
    matches = matches_of(report)
    if matches:
        lines.append(f"Matched:   {', '.join(matches)}")
    if report.kind == "person" and report.reporter_role:
        lines.append(f"Reported by: {report.reporter or 'an anonymous reporter'} ({report.reporter_role})")
    lines += [
        "",
        f"Open the report: {report_link(console_url, report)}",
        "",
        f"Further reports of this person in this category in the next {dedup_hours} hours wait in the queue and the "
        "weekly digest; they are not mailed again.",
    ]
    return subject, "\n".join(lines)


def _same_person(report: Report):  # type: ignore[no-untyped-def]
    if report.person_key is None:
        # Nobody known at all: each such report stands alone.
        return Report.id == report.id
    return Report.person_key == report.person_key


def _waiting(now: datetime):  # type: ignore[no-untyped-def]
    return or_(Report.alert_state.in_(WAITING),
               and_(Report.alert_state == "sending", Report.alert_sent_at < now - STALE_CLAIM))  # fmt: skip


def _claim(store: Session, report_id: int, window: timedelta, now: datetime) -> Report | str:
    """This report, now ours to mail (state "sending"); or "skipped" (an alert about the same thing went out), or
    "taken" (another notifier had it first)."""
    bump(store, CLAIMS)
    report = store.get(Report, report_id, populate_existing=True)
    if report is None or store.scalar(select(Report.id).where(Report.id == report_id, _waiting(now))) is None:
        return "taken"
    # Another alert for this person and category already went out in the window, or is waiting to be retried.
    earlier = store.scalar(select(Report.id).where(
        Report.id != report.id, _same_person(report), Report.category == report.category,
        or_(and_(Report.alert_state.in_(("sent", "sending")), Report.alert_sent_at >= now - window),
            and_(Report.alert_state == "failed", Report.id < report.id)),
    ).limit(1))  # fmt: skip
    if earlier is not None:
        report.alert_state = "skipped"
        return "skipped"
    report.alert_state = "sending"
    report.alert_sent_at = now
    report.alert_attempts += 1
    return report


def send_due_alerts(sessions: Callable[[], Session], mailer: Mailer, alerts: Alerts, console_url: str,
                    zone: ZoneInfo, now: datetime, actor: str = NOTIFIER) -> AlertPass:  # fmt: skip
    """Claim and mail the reports waiting for an alert, oldest first. Stops at the first mail that fails (the
    server is down: the rest wait for the next pass). Each mail sent, naming a person, is in the audit trail."""
    if not alerts.recipients:
        return AlertPass()
    window = timedelta(hours=alerts.dedup_hours)
    with sessions() as store:
        waiting = list(store.scalars(select(Report.id).where(_waiting(now)).order_by(Report.id).limit(BATCH)))
    sent = skipped = 0
    for report_id in waiting:
        with sessions() as store, store.begin():
            claimed = _claim(store, report_id, window, now)
            if isinstance(claimed, str):
                skipped += claimed == "skipped"
                continue
            subject, body = alert_message(claimed, console_url, zone, alerts.dedup_hours)
        try:
            mailer.send(", ".join(alerts.recipients), subject, body)
        except (OSError, smtplib.SMTPException) as exc:
            with sessions() as store, store.begin():
                store.execute(Report.__table__.update()
                              .where(Report.id == report_id, Report.alert_state == "sending")
                              .values(alert_state="failed", alert_sent_at=None))  # fmt: skip
            return AlertPass(sent, skipped, 1, f"{type(exc).__name__}: {exc}")
        with sessions() as store, store.begin():
            store.execute(Report.__table__.update().where(Report.id == report_id, Report.alert_state == "sending")
                          .values(alert_state="sent"))  # fmt: skip
            record(store, actor, "report_alert_sent", target=f"report:{report_id}",
                   detail={"to": alerts.recipients, "subject": subject})  # fmt: skip
        sent += 1
    return AlertPass(sent, skipped)
