"""Safeguarding alerts to the e-safety officer through a real SMTP server (aiosmtpd): once per person and
category within the window, retried while the server is down, sent once by notifiers racing each other (SQLite and
PostgreSQL), and saying who, class, when, category and the term or address, never the page's text."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.notify.alerts import AlertPass, send_due_alerts
from gateway.notify.mail import Mailer
from gateway.notify.report_notifier import ReportNotifier
from gateway.policy.alerts_model import Alerts
from gateway.policy.loader import PolicyError, load_policy
from gateway.store.models.audit import AuditEvent
from gateway.store.models.reports import Report
from gateway.store.reports import create_report
from tests.support.inbox import Inbox
from tests.support.policies import write_policy
from tests.support.stores import migrated

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CONSOLE = "https://gateway.school.example"
ALERTS = Alerts(recipients=["dsl@school.example", "deputy@school.example"])
AMY = {"username": "amy", "display_name": "Amy Jones", "group_name": "pupils", "school_class": "5B",
       "year_group": 5, "device": "ipad-07", "client_ip": "10.1.2.3"}  # fmt: skip
BEN = {"username": "ben", "display_name": "Ben Smith", "group_name": "pupils", "school_class": "6A",
       "year_group": 6, "device": "ipad-08", "client_ip": "10.1.2.4"}  # fmt: skip
EXCERPT = "THE PAGE TEXT AROUND THE MATCH MUST NOT BE MAILED"





def report(sessions: Callable[[], Session], person: dict[str, object], category: str = "self_harm",
           at: datetime = NOW, **fields: object) -> int:  # fmt: skip
    with sessions() as store, store.begin():
        row = create_report(store, kind="search", queue="officer", url="https://www.google.co.uk/search?q=x",
                            host="www.google.co.uk", category=category, person=person, alert=True, now=at)
        row.search_terms = fields.get("search_terms", "how to self harm")
        row.matches = json.dumps(["self harm"])
        row.excerpt = EXCERPT
        store.flush()
        return row.id


def states(sessions: Callable[[], Session]) -> dict[int, tuple[str, int]]:
    with sessions() as store:
        return {r.id: (r.alert_state, r.alert_attempts) for r in store.scalars(select(Report).order_by(Report.id))}


def run(sessions: Callable[[], Session], inbox: Inbox, now: datetime = NOW, alerts: Alerts = ALERTS) -> AlertPass:
    return send_due_alerts(sessions, Mailer("127.0.0.1", inbox.port, "gateway@school.example"), alerts, CONSOLE,
                           LONDON, now)  # fmt: skip


def test_one_alert_per_person_and_category_within_the_window(sessions, inbox) -> None:
    first = report(sessions, AMY)
    second = report(sessions, AMY, at=NOW + timedelta(minutes=5))
    bens = report(sessions, BEN, at=NOW + timedelta(minutes=6))
    amys_suicide = report(sessions, AMY, category="suicide", at=NOW + timedelta(minutes=7))
    done = run(sessions, inbox, NOW + timedelta(minutes=8))
    assert (done.sent, done.skipped, done.failed) == (3, 1, 0)
    mails = inbox.wait_for(3)
    assert [m["Subject"] for m in mails] == ["Safeguarding alert: self-harm — Amy Jones (amy)",
                                             "Safeguarding alert: self-harm — Ben Smith (ben)",
                                             "Safeguarding alert: suicide — Amy Jones (amy)"]  # fmt: skip
    assert states(sessions) == {first: ("sent", 1), second: ("skipped", 0), bens: ("sent", 1),
                                amys_suicide: ("sent", 1)}  # fmt: skip
    # Nothing more on the next pass; a report past the window is mailed again.
    assert run(sessions, inbox, NOW + timedelta(hours=1)).sent == 0
    later = report(sessions, AMY, at=NOW + timedelta(hours=25))
    assert run(sessions, inbox, NOW + timedelta(hours=25)).sent == 1
    assert states(sessions)[later] == ("sent", 1) and len(inbox.wait_for(4)) == 4


def test_the_mail_says_who_when_what_and_links_to_the_report_without_the_page_text(sessions, inbox) -> None:
    number = report(sessions, AMY, search_terms="how to self harm")
    run(sessions, inbox)
    (mail,) = inbox.wait_for(1)
    body = mail.get_content()
    assert mail["To"] == "dsl@school.example, deputy@school.example"
    assert "Amy Jones (amy)" in body and "Class:     5B" in body and "Year: 5" in body
    assert "Device:    ipad-07 (10.1.2.3)" in body
    assert "When:      Tuesday 01 December 2026, 10:00" in body
    assert "Searched:  how to self harm" in body and "Matched:   self harm" in body
    assert f"Open the report: {CONSOLE}/reports/{number}" in body
    assert EXCERPT not in body
    assert "in the next 24 hours wait in the queue" in body
    # A mail naming a pupil is a disclosure of personal data: it is in the audit trail.
    with sessions() as store:
        (event,) = store.scalars(select(AuditEvent).where(AuditEvent.action == "report_alert_sent")).all()
    assert (event.actor, event.target) == ("gateway:notifier", f"report:{number}")
    assert json.loads(event.detail)["to"] == ["dsl@school.example", "deputy@school.example"]


def test_mail_server_down_then_back_the_alert_is_retried_and_sent_once(sessions, inbox) -> None:
    inbox.stop()
    number = report(sessions, AMY)
    down = run(sessions, inbox)
    assert down.sent == 0 and down.failed == 1 and "Connection refused" in (down.error or "")
    assert states(sessions)[number] == ("failed", 1)
    # Meanwhile a second report of the same thing waits behind the first: it will not make a second mail.
    second = report(sessions, AMY, at=NOW + timedelta(minutes=1))
    assert run(sessions, inbox).failed == 1 and states(sessions)[number] == ("failed", 2)
    inbox.start()
    back = run(sessions, inbox, NOW + timedelta(minutes=2))
    assert (back.sent, back.skipped) == (1, 1)
    assert states(sessions) == {number: ("sent", 3), second: ("skipped", 0)}
    assert len(inbox.wait_for(1)) == 1


def test_no_recipients_no_mail_and_the_report_keeps_waiting(sessions, inbox) -> None:
    number = report(sessions, AMY)
    assert run(sessions, inbox, alerts=Alerts()).sent == 0
    assert states(sessions)[number] == ("due", 0) and inbox.messages == []


def race(sessions: Callable[[], Session], inbox: Inbox, notifiers: int = 4) -> None:
    for n in range(6):
        pupil = AMY | {"username": f"pupil{n}", "display_name": f"Pupil {n}", "client_ip": f"10.1.3.{n}"}
        report(sessions, pupil)
        report(sessions, pupil, at=NOW + timedelta(seconds=1))
    start = threading.Barrier(notifiers)

    def notifier() -> None:
        start.wait()
        run(sessions, inbox, NOW + timedelta(seconds=2))

    threads = [threading.Thread(target=notifier) for _ in range(notifiers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    inbox.wait_for(6)
    assert sorted(m["Subject"] for m in inbox.messages) == [f"Safeguarding alert: self-harm — Pupil {n} (pupil{n})"
                                                            for n in range(6)]  # fmt: skip
    assert sorted(state for state, _ in states(sessions).values()) == ["sent"] * 6 + ["skipped"] * 6


def test_notifiers_racing_send_each_alert_once(sessions, inbox) -> None:
    race(sessions, inbox)


def test_notifiers_racing_send_each_alert_once_on_postgresql(postgres_url: str, inbox) -> None:
    sessions = migrated(postgres_url)
    try:
        race(sessions, inbox)
    finally:
        with sessions() as store, store.begin():
            store.query(Report).delete()


def test_the_console_thread_mails_within_seconds_and_follows_the_policy_file(sessions, inbox, tmp_path) -> None:
    policy = write_policy(tmp_path, "reports: {alerts: {recipients: [], digest: false}}\n")
    notifier = ReportNotifier(sessions, Mailer("127.0.0.1", inbox.port), policy, CONSOLE, poll_seconds=0.1).start()
    try:
        report(sessions, AMY, at=datetime.now(UTC))
        time.sleep(0.5)
        # No recipients yet: the report waits. Then the officer's address is added to the policy.
        assert inbox.messages == []
        write_policy(tmp_path, "reports: {alerts: {recipients: [dsl@school.example], digest: false}}\n")
        (mail,) = inbox.wait_for(1)
        assert mail["To"] == "dsl@school.example"
    finally:
        notifier.stop()


def test_a_high_risk_category_nothing_reports_under_refuses_the_policy(tmp_path) -> None:
    policy = write_policy(tmp_path, "reports: {alerts: {high_risk: [self_harm, self-harm], recipients: [dsl]}}\n")
    with pytest.raises(PolicyError) as refused:
        load_policy(policy)
    message = str(refused.value)
    assert "reports.alerts.high_risk.1: 'self-harm' is not a category anything reports under" in message
    assert "reports.alerts.recipients.0" in message  # not an e-mail address


def test_an_alert_left_sending_by_a_notifier_that_died_is_sent_by_the_next(sessions, inbox) -> None:
    # The console stopped between claiming the report and the mail server taking the mail.
    dying = report(sessions, AMY)
    with sessions() as store, store.begin():
        claimed = store.get(Report, dying)
        claimed.alert_state, claimed.alert_sent_at, claimed.alert_attempts = "sending", NOW, 1
    # Another notifier, a minute later: the claim may still be in flight, so nothing is sent twice.
    assert run(sessions, inbox, NOW + timedelta(minutes=1)).sent == 0
    assert states(sessions)[dying] == ("sending", 1)
    # Long past any send's time-out: the alert is sent, not lost.
    done = run(sessions, inbox, NOW + timedelta(minutes=10))
    assert (done.sent, done.failed) == (1, 0)
    assert states(sessions)[dying] == ("sent", 2)
    (mail,) = inbox.wait_for(1)
    assert mail["Subject"] == "Safeguarding alert: self-harm — Amy Jones (amy)"
