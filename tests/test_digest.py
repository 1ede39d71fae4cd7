"""The weekly digest: the week's reports counted by category, class and group, the open reports of both queues
with links, sent once per week on its day through a real SMTP server (aiosmtpd), and `gateway reports digest`."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.cli.main import cli
from gateway.notify.digest import build_digest, digest_message, due_week, send_digest_if_due
from gateway.notify.mail import Mailer
from gateway.policy.alerts_model import Alerts
from gateway.store.engine import make_engine, session_factory
from gateway.store.migrate import upgrade
from gateway.store.models.audit import AuditEvent
from gateway.store.models.reports import Report, ReportDigest
from gateway.store.reports import create_report
from tests.support.inbox import Inbox
from tests.support.policies import write_policy
from tests.support.ports import free_port

LONDON = ZoneInfo("Europe/London")
CONSOLE = "https://gateway.school.example"
WEEK = date(2026, 11, 23)  # a Monday
ALERTS = Alerts(recipients=["dsl@school.example"], digest_day="monday", digest_time=time(7, 30))


def pupil(name: str, school_class: str | None, group: str = "pupils") -> dict[str, object]:
    return {"username": name, "display_name": name.title(), "group_name": group, "school_class": school_class,
            "client_ip": "10.1.2.3"}  # fmt: skip




def add(sessions: Callable[[], Session], at: datetime, kind: str, category: str | None,
        person: dict[str, object] | None, queue: str = "officer", status: str = "open") -> int:  # fmt: skip
    with sessions() as store, store.begin():
        row = create_report(store, kind=kind, queue=queue, url=f"https://{category or 'x'}.example/",
                            host=f"{category or 'x'}.example", category=category, person=person, now=at)
        row.status = status
        store.flush()
        return row.id


@pytest.fixture
def week(sessions: Callable[[], Session]) -> dict[str, int]:
    monday = datetime(2026, 11, 23, 9, 0, tzinfo=LONDON)
    ids = {
        "amy-self-harm": add(sessions, monday, "search", "self_harm", pupil("amy", "5B")),
        "amy-adult": add(sessions, monday + timedelta(days=1), "page", "adult", pupil("amy", "5B"), status="blocked"),
        "ben-adult": add(sessions, monday + timedelta(days=2), "page", "adult", pupil("ben", "6A")),
        "guest-gambling": add(sessions, monday + timedelta(days=3), "flagged_site", "gambling",
                              pupil("visitor", None, "guest"), status="dismissed"),  # fmt: skip
        "contact": add(sessions, monday + timedelta(days=4), "contact", None, None, queue="headteacher"),
        # Sunday 23:30 London is still the week; Monday 00:10 is the next one, and the week before is out.
        "sunday-late": add(sessions, datetime(2026, 11, 29, 23, 30, tzinfo=LONDON), "person", "hate",
                           pupil("cat", "5B"), status="escalated", queue="headteacher"),  # fmt: skip
        "next-week": add(sessions, datetime(2026, 11, 30, 0, 10, tzinfo=LONDON), "search", "drugs", pupil("amy", "5B")),
        "week-before": add(sessions, datetime(2026, 11, 22, 12, 0, tzinfo=LONDON), "search", "drugs",
                           pupil("amy", "5B"), status="closed"),  # fmt: skip
    }
    return ids


def test_counts_per_category_class_and_group_for_the_week(sessions, week) -> None:
    with sessions() as store:
        digest = build_digest(store, WEEK, LONDON, CONSOLE)
    counts = lambda counted: {c.name: c.reports for c in counted}  # noqa: E731
    assert digest.total == 6
    assert counts(digest.by_category) == {"adult": 2, "self_harm": 1, "gambling": 1, "hate": 1, "(none)": 1}
    assert counts(digest.by_class) == {"5B": 3, "6A": 1, "(no class)": 2}
    assert counts(digest.by_group) == {"pupils": 4, "guest": 1, "(no group)": 1}
    assert counts(digest.by_kind) == {"page": 2, "search": 1, "flagged_site": 1, "contact": 1, "person": 1}
    # Open now, whenever made: both queues, with links; dismissed, blocked and closed ones are done.
    assert digest.open_total == 5
    assert {r.id for r in digest.open_reports} == {week[k] for k in ("amy-self-harm", "ben-adult", "contact",
                                                                      "sunday-late", "next-week")}  # fmt: skip
    subject, body = digest_message(digest, LONDON)
    assert subject == "Weekly safeguarding digest, 23 Nov to 29 Nov 2026: 6 reports, 5 open"
    assert re.search(r"^By category: +reports  times seen$", body, re.M)
    assert re.search(r"^  adult +2 +2$", body, re.M) and re.search(r"^  5B +3 +3$", body, re.M)
    assert "E-safety officer's queue (3):" in body and "Headteacher's queue (2):" in body
    assert f"{CONSOLE}/reports/{week['contact']}" in body


def test_due_on_its_day_and_time_in_school_time() -> None:
    monday_early = datetime(2026, 11, 30, 7, 29, tzinfo=LONDON)
    assert due_week(ALERTS, LONDON, monday_early) == date(2026, 11, 16)
    assert due_week(ALERTS, LONDON, monday_early + timedelta(minutes=1)) == WEEK
    assert due_week(ALERTS, LONDON, datetime(2026, 12, 6, 23, 0, tzinfo=LONDON)) == WEEK
    friday = Alerts(recipients=["dsl@school.example"], digest_day="friday", digest_time=time(15, 0))
    assert due_week(friday, LONDON, datetime(2026, 12, 4, 15, 0, tzinfo=LONDON)) == date(2026, 11, 27)


def test_sent_once_per_week_and_again_after_the_mail_server_comes_back(sessions, week, inbox) -> None:
    mailer = Mailer("127.0.0.1", inbox.port, "gateway@school.example")
    due = datetime(2026, 11, 30, 7, 30, tzinfo=LONDON)
    inbox.stop()
    with pytest.raises(ConnectionRefusedError):
        send_digest_if_due(sessions, mailer, ALERTS, LONDON, CONSOLE, due)
    with sessions() as store:
        assert store.scalars(select(ReportDigest)).all() == []
    inbox.start()
    assert send_digest_if_due(sessions, mailer, ALERTS, LONDON, CONSOLE, due) == WEEK
    assert send_digest_if_due(sessions, mailer, ALERTS, LONDON, CONSOLE, due + timedelta(hours=3)) is None
    (mail,) = inbox.wait_for(1)
    assert mail["To"] == "dsl@school.example" and "6 reports, 5 open" in mail["Subject"]
    with sessions() as store:
        (row,) = store.scalars(select(ReportDigest)).all()
    assert row.week_start == WEEK and row.recipients == "dsl@school.example"
    with sessions() as store:
        (event,) = store.scalars(select(AuditEvent).where(AuditEvent.action == "report_digest_sent")).all()
    assert (event.actor, event.target) == ("gateway:notifier", "report-digest:2026-11-23")
    # Nothing to send to, or digests turned off: nothing sent.
    next_week = due + timedelta(days=7)
    assert send_digest_if_due(sessions, mailer, Alerts(), LONDON, CONSOLE, next_week) is None
    assert send_digest_if_due(sessions, mailer, ALERTS.model_copy(update={"digest": False}), LONDON, CONSOLE,
                              next_week) is None  # fmt: skip


def test_the_cli_prints_a_week_audited_and_sends_it_once(sessions, week, inbox, tmp_path) -> None:
    url = str(sessions.kw["bind"].url)  # type: ignore[attr-defined]
    policy = write_policy(tmp_path, "reports: {alerts: {recipients: [dsl@school.example]}}\n")
    runner = CliRunner()
    printed = runner.invoke(cli, ["reports", "digest", "--db", url, "--policy", str(policy), "--week", "2026-11-23"])
    assert printed.exit_code == 0, printed.output
    assert "Weekly safeguarding digest, 23 Nov to 29 Nov 2026: 6 reports, 5 open" in printed.output
    with sessions() as store:
        assert store.scalar(select(AuditEvent.target).where(AuditEvent.action == "report_digest_viewed")) == (
            "report-digest:2026-11-23")  # fmt: skip
    send = ["reports", "digest", "--db", url, "--policy", str(policy), "--week", "2026-11-23", "--send",
            "--smtp-host", "127.0.0.1", "--smtp-port", str(inbox.port)]  # fmt: skip
    sent = runner.invoke(cli, send)
    assert sent.exit_code == 0 and "sent to dsl@school.example" in sent.output
    again = runner.invoke(cli, send)
    assert again.exit_code == 1 and "was sent already" in again.output
    with sessions() as store:
        assert store.scalar(select(AuditEvent.actor).where(AuditEvent.action == "report_digest_sent")).startswith(
            "cli:")  # fmt: skip
    assert len(inbox.wait_for(1)) == 1


def test_the_cli_alert_pass(sessions, inbox, tmp_path) -> None:
    url = str(sessions.kw["bind"].url)  # type: ignore[attr-defined]
    with sessions() as store, store.begin():
        create_report(store, kind="person", queue="officer", url="https://bad.example/", host="bad.example",
                      category="suicide", person=pupil("amy", "5B"), alert=True, now=datetime.now(UTC))
    policy = write_policy(tmp_path, "reports: {alerts: {recipients: [dsl@school.example]}}\n")
    args = ["reports", "alerts", "--db", url, "--policy", str(policy), "--smtp-host", "127.0.0.1"]
    down = CliRunner().invoke(cli, [*args, "--smtp-port", str(free_port())])
    assert down.exit_code == 1 and "tried again on the next run" in down.output
    sent = CliRunner().invoke(cli, [*args, "--smtp-port", str(inbox.port)])
    assert sent.exit_code == 0 and "1 alerts sent" in sent.output
    with sessions() as store:
        assert store.scalar(select(Report.alert_state)) == "sent"


def digest_race(sessions: Callable[[], Session], inbox: Inbox, notifiers: int = 4) -> None:
    mailer = Mailer("127.0.0.1", inbox.port, "gateway@school.example")
    due = datetime(2026, 11, 30, 7, 30, tzinfo=LONDON)
    start = threading.Barrier(notifiers)
    sent: list[date | None] = []

    def notifier() -> None:
        start.wait()
        sent.append(send_digest_if_due(sessions, mailer, ALERTS, LONDON, CONSOLE, due))

    threads = [threading.Thread(target=notifier) for _ in range(notifiers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(sent, key=str) == [WEEK] + [None] * (notifiers - 1)
    inbox.wait_for(1)
    assert len(inbox.messages) == 1


def test_notifiers_racing_send_the_digest_once(sessions, inbox) -> None:
    digest_race(sessions, inbox)


def test_notifiers_racing_send_the_digest_once_on_postgresql(postgres_url: str, inbox) -> None:
    upgrade(postgres_url)
    sessions = session_factory(make_engine(postgres_url))
    try:
        digest_race(sessions, inbox)
    finally:
        with sessions() as store, store.begin():
            store.execute(delete(ReportDigest))
