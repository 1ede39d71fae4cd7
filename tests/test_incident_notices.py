"""Circumvention notices through a real SMTP server (aiosmtpd): one per person and technique per window, then ONE
summary at the window's end, however many attempts; retried while the mail server is down; sent once by notifiers
racing each other (SQLite and PostgreSQL); naming who, class, technique and evidence, never a full address."""

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

from gateway.notify.incident_notices import NoticePass, NoticeSettings, send_incident_notices
from gateway.notify.mail import Mailer
from gateway.notify.report_notifier import ReportNotifier
from gateway.circumvention.incident import Confidence, Detection, Technique
from gateway.store.incidents import record_incidents
from gateway.store.models.audit import AuditEvent
from gateway.store.models.circumvention import Incident
from tests.support.inbox import Inbox
from tests.support.policies import write_policy
from tests.support.stores import migrated

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CONSOLE = "https://gateway.school.example"
SETTINGS = NoticeSettings(("head@school.example", "dsl@school.example"), timedelta(minutes=60))
AMY = {"username": "amy", "display_name": "Amy Jones", "group_name": "pupils", "school_class": "5B",
       "year_group": 5, "device": "ipad-07", "client_ip": "10.1.2.3", "person_key": "user:amy"}  # fmt: skip
BEN = {"username": "ben", "display_name": "Ben Smith", "group_name": "pupils", "school_class": "6A",
       "year_group": 6, "device": "ipad-08", "client_ip": "10.1.2.4", "person_key": "user:ben"}  # fmt: skip
TOKEN_URL = "https://dns.example/dns-query?token=SECRET-TOKEN"





def incident(sessions: Callable[[], Session], person: dict[str, object], technique: str = "doh",
             at: datetime = NOW, **fields: object) -> int:  # fmt: skip
    """A new incident, as the access-log writer makes it."""
    with sessions() as store, store.begin():
        evidence = {"detector": "doh-content-type", "confidence": "high", "host": "dns.example", "sni": "dns.example",
                    "url": TOKEN_URL, "user_agent": "Mozilla/5.0 (iPad)",
                    "first_bytes": "GET /dns-query?token=SECRET-TOKEN"}  # fmt: skip
        row = Incident(created_at=at, last_seen_at=at, hits=1, technique=technique, status="open",
                       notice_state="due", notice_attempts=0, **(evidence | person | fields))  # fmt: skip
        store.add(row)
        store.flush()
        return row.id


def attempt_again(sessions: Callable[[], Session], number: int, at: datetime) -> None:
    """A repeat of an open incident, as the writer records it: one more hit."""
    with sessions() as store, store.begin():
        row = store.get(Incident, number)
        row.hits += 1
        row.last_seen_at = at


def detected(sessions: Callable[[], Session], person: dict[str, object], at: datetime) -> None:
    """An access-log row carrying a DoH detection, recorded as the writer records it (store.incidents)."""
    detection = Detection(Technique.DOH, "doh-content-type", Confidence.HIGH, host="dns.example",
                          url=TOKEN_URL, user_agent="Mozilla/5.0 (iPad)")  # fmt: skip
    row = {k: v for k, v in person.items() if k != "person_key"} | {
        "at": at, "row_id": f"r{at.timestamp()}", "host": "dns.example", "incident": detection.as_row_value()}
    with sessions() as store, store.begin():
        record_incidents(store.connection(), [row])


def states(sessions: Callable[[], Session]) -> dict[int, tuple[str, int]]:
    with sessions() as store:
        return {i.id: (i.notice_state, i.notice_attempts)
                for i in store.scalars(select(Incident).order_by(Incident.id))}  # fmt: skip


def run(sessions: Callable[[], Session], inbox: Inbox, now: datetime = NOW,
        settings: NoticeSettings = SETTINGS) -> NoticePass:  # fmt: skip
    return send_incident_notices(sessions, Mailer("127.0.0.1", inbox.port, "gateway@school.example"), settings,
                                 CONSOLE, LONDON, now)  # fmt: skip


def test_thirty_attempts_in_a_window_make_one_notice_then_one_summary(sessions, inbox) -> None:
    first = incident(sessions, AMY)
    assert run(sessions, inbox, NOW + timedelta(seconds=5)).sent == 1
    # 29 more attempts in the hour: repeats of the open incident, and a new incident after the first was dismissed.
    for n in range(1, 20):
        attempt_again(sessions, first, NOW + timedelta(minutes=n))
    later = [incident(sessions, AMY, at=NOW + timedelta(minutes=30, seconds=n)) for n in range(10)]
    for minute in range(1, 60, 5):
        done = run(sessions, inbox, NOW + timedelta(minutes=minute, seconds=30))
        assert (done.sent, done.summarised) == (0, 0)
    assert states(sessions)[later[0]] == ("due", 0)
    # The window ends: one summary, counting all thirty.
    end = run(sessions, inbox, NOW + timedelta(minutes=60, seconds=6))
    assert (end.sent, end.summarised, end.failed) == (0, 1, 0)
    notice, summary = inbox.wait_for(2)
    assert notice["Subject"] == "Circumvention attempt: DNS over HTTPS — Amy Jones (amy)"
    assert summary["Subject"] == "Circumvention summary: 1 person and technique, 30 attempts"
    body = summary.get_content()
    assert "Amy Jones (amy), class 5B: DNS over HTTPS" in body and "30 attempts in all on 11 incidents" in body
    assert f"{CONSOLE}/incidents/{later[-1]}" in body
    assert set(states(sessions).values()) == {("summarised", 1), ("summarised", 0)}
    # Nothing more to say: no more mail, however many passes.
    for minute in (61, 70, 200):
        assert run(sessions, inbox, NOW + timedelta(minutes=minute)) == NoticePass()
    assert len(inbox.messages) == 2
    # An attempt after the window opens a new one: a notice again.
    attempt_again(sessions, first, NOW + timedelta(minutes=300))
    assert run(sessions, inbox, NOW + timedelta(minutes=300, seconds=5)).sent == 1
    assert "Attempts:   21" in inbox.wait_for(3)[2].get_content()


def test_thirty_detections_recorded_by_the_writer_make_one_notice_then_one_summary(sessions, inbox) -> None:
    detected(sessions, AMY, NOW)
    assert run(sessions, inbox, NOW + timedelta(seconds=5)).sent == 1
    for n in range(1, 30):
        detected(sessions, AMY, NOW + timedelta(minutes=1, seconds=n))
        assert run(sessions, inbox, NOW + timedelta(minutes=1, seconds=n + 1)) == NoticePass()
    assert run(sessions, inbox, NOW + timedelta(minutes=60, seconds=6)).summarised == 1
    notice, summary = inbox.wait_for(2)
    assert "Attempts:   1" in notice.get_content() and "30 attempts in all on 1 incident," in summary.get_content()


def test_two_people_make_two_notices_and_two_techniques_two(sessions, inbox) -> None:
    incident(sessions, AMY)
    incident(sessions, BEN, at=NOW + timedelta(seconds=1))
    incident(sessions, AMY, technique="ip_literal", at=NOW + timedelta(seconds=2), detector="ip-literal-connect",
             host="93.184.216.34")  # fmt: skip
    done = run(sessions, inbox, NOW + timedelta(seconds=5))
    assert (done.sent, done.summarised) == (3, 0)
    subjects = sorted(m["Subject"] for m in inbox.wait_for(3))
    assert sorted(s.split(" — ")[1] for s in subjects) == ["Amy Jones (amy)", "Amy Jones (amy)", "Ben Smith (ben)"]
    assert any("a site by its bare address" in s for s in subjects)
    # Quiet windows end without a summary.
    assert run(sessions, inbox, NOW + timedelta(hours=2)) == NoticePass()


def test_the_notice_says_who_what_when_and_links_without_tokens_or_first_bytes(sessions, inbox) -> None:
    number = incident(sessions, AMY)
    run(sessions, inbox)
    (mail,) = inbox.wait_for(1)
    body = mail.get_content()
    assert mail["To"] == "head@school.example, dsl@school.example"
    assert "Who:        Amy Jones (amy)" in body and "Class:      5B" in body and "Year: 5" in body
    assert "Device:     ipad-07 (10.1.2.3)" in body and "When:       Tuesday 01 December 2026, 10:00" in body
    assert "detector doh-content-type, confidence high" in body and "Site:       dns.example" in body
    assert f"{CONSOLE}/incidents/{number}" in body
    assert "SECRET-TOKEN" not in body and "dns-query" not in body
    # A mail naming a pupil is a disclosure: it is in the audit trail.
    with sessions() as store:
        (event,) = store.scalars(select(AuditEvent).where(AuditEvent.action == "incident_notice_sent")).all()
    assert (event.actor, event.target) == ("gateway:notifier", f"incident:{number}")
    assert json.loads(event.detail)["to"] == ["head@school.example", "dsl@school.example"]


def test_mail_server_down_the_notice_is_retried_and_not_lost(sessions, inbox) -> None:
    inbox.stop()
    number = incident(sessions, AMY)
    down = run(sessions, inbox)
    assert (down.sent, down.failed) == (0, 1) and "Connection refused" in (down.error or "")
    assert states(sessions)[number] == ("failed", 1)
    attempt_again(sessions, number, NOW + timedelta(seconds=30))
    assert run(sessions, inbox, NOW + timedelta(minutes=1)).failed == 1
    assert states(sessions)[number] == ("failed", 2)
    inbox.start()
    back = run(sessions, inbox, NOW + timedelta(minutes=2))
    assert (back.sent, back.failed) == (1, 0) and states(sessions)[number] == ("sent", 3)
    (mail,) = inbox.wait_for(1)
    assert "Attempts:   2" in mail.get_content()


def test_a_summary_the_mail_server_refuses_waits_for_the_next_pass(sessions, inbox) -> None:
    number = incident(sessions, AMY)
    run(sessions, inbox)
    attempt_again(sessions, number, NOW + timedelta(minutes=10))
    inbox.stop()
    down = run(sessions, inbox, NOW + timedelta(minutes=61))
    assert (down.summarised, down.failed) == (0, 1) and states(sessions)[number] == ("sent", 1)
    inbox.start()
    assert run(sessions, inbox, NOW + timedelta(minutes=62)).summarised == 1
    assert [m["Subject"].split(":")[0] for m in inbox.wait_for(2)] == ["Circumvention attempt",
                                                                       "Circumvention summary"]  # fmt: skip


def test_no_recipients_no_mail_and_the_incident_keeps_waiting(sessions, inbox) -> None:
    number = incident(sessions, AMY)
    assert run(sessions, inbox, settings=NoticeSettings((), timedelta(hours=1))) == NoticePass()
    assert states(sessions)[number] == ("due", 0) and inbox.messages == []


def test_a_notice_left_sending_by_a_notifier_that_died_is_sent_by_the_next(sessions, inbox) -> None:
    dying = incident(sessions, AMY)
    with sessions() as store, store.begin():
        claimed = store.get(Incident, dying)
        claimed.notice_state, claimed.notice_sent_at, claimed.notice_attempts = "sending", NOW, 1
    assert run(sessions, inbox, NOW + timedelta(minutes=1)).sent == 0
    assert run(sessions, inbox, NOW + timedelta(minutes=10)).sent == 1
    assert states(sessions)[dying] == ("sent", 2) and len(inbox.wait_for(1)) == 1


def race(sessions: Callable[[], Session], inbox: Inbox, notifiers: int = 4) -> None:
    for n in range(6):
        pupil = AMY | {"username": f"pupil{n}", "display_name": f"Pupil {n}", "person_key": f"user:pupil{n}"}
        incident(sessions, pupil)
        incident(sessions, pupil, at=NOW + timedelta(seconds=1))
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
    assert sorted(m["Subject"].split(" — ")[1] for m in inbox.messages) == [f"Pupil {n} (pupil{n})"
                                                                            for n in range(6)]  # fmt: skip
    assert sorted(state for state, _ in states(sessions).values()) == ["sent"] * 12


def test_notifiers_racing_send_each_notice_once(sessions, inbox) -> None:
    race(sessions, inbox)


@pytest.mark.postgres
def test_notifiers_racing_send_each_notice_once_on_postgresql(postgres_url: str, inbox) -> None:
    sessions = migrated(postgres_url)
    try:
        race(sessions, inbox)
    finally:
        with sessions() as store, store.begin():
            store.query(Incident).delete()


def test_the_console_thread_tells_the_head_within_seconds_falling_back_to_the_alert_recipients(sessions, inbox,
                                                                                               tmp_path) -> None:
    policy = write_policy(tmp_path, "reports: {alerts: {recipients: [dsl@school.example], digest: false}}\n")
    notifier = ReportNotifier(sessions, Mailer("127.0.0.1", inbox.port), policy, CONSOLE, poll_seconds=0.1).start()
    try:
        incident(sessions, AMY, at=datetime.now(UTC))
        (mail,) = inbox.wait_for(1, timeout=30)
        # No circumvention.notices.recipients: the officer's alert addresses are told.
        assert mail["To"] == "dsl@school.example" and mail["Subject"].startswith("Circumvention attempt:")
        write_policy(tmp_path, "reports: {alerts: {recipients: [dsl@school.example], digest: false}}\n"
                     "circumvention: {notices: {recipients: [head@school.example], window_minutes: 5}}\n")
        deadline = time.monotonic() + 30
        while notifier.settings().notices.recipients != ("head@school.example",) and time.monotonic() < deadline:
            time.sleep(0.05)
        incident(sessions, BEN, at=datetime.now(UTC))
        assert inbox.wait_for(2, timeout=30)[1]["To"] == "head@school.example"
    finally:
        notifier.stop()


def test_the_cli_notice_pass_for_cron(sessions, inbox, store_url, tmp_path) -> None:
    from click.testing import CliRunner

    from gateway.cli.main import cli
    from tests.support.ports import free_port

    incident(sessions, AMY, at=datetime.now(UTC))
    policy = write_policy(tmp_path, "circumvention: {notices: {recipients: [head@school.example]}}\n")
    args = ["reports", "notices", "--db", store_url, "--policy", str(policy), "--smtp-host", "127.0.0.1"]
    down = CliRunner().invoke(cli, [*args, "--smtp-port", str(free_port())])
    assert down.exit_code == 1 and "tried again on the next run" in down.output
    sent = CliRunner().invoke(cli, [*args, "--smtp-port", str(inbox.port)])
    assert sent.exit_code == 0 and "1 notices sent" in sent.output, sent.output
    assert len(inbox.wait_for(1)) == 1
