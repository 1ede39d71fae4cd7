"""From a pupil's device to the e-safety officer's inbox: a real mitmdump blocks a harmful search or an attempt on an
illegal-content list, its access-log writer makes the report, and the console's notifier thread mails the officer
(aiosmtpd), once per person and category however often the pupil tries."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.notify.mail import Mailer
from gateway.notify.report_notifier import ReportNotifier
from gateway.store.engine import make_engine, session_factory
from gateway.store.models.reports import Report
from tests.support.clients import curl
from tests.support.gateway import start_gateway
from tests.support.inbox import Inbox
from tests.support.mitmdump import Mitmdump
from tests.support.policies import demo_policy_with_devices

pytestmark = pytest.mark.e2e

PUPIL, STAFF = "127.0.0.2", "127.0.0.3"
CONSOLE = "https://gateway.school.example"


@pytest.fixture
def officer(tmp_path: Path, origin) -> Iterator[tuple[Mitmdump, Callable[[], Session], Inbox]]:
    """The demo policy mailing dsl@school.example (no digest), a gateway, its store, and the console's notifier."""
    policy = demo_policy_with_devices(tmp_path, {PUPIL: "pupil", STAFF: "staff"},
                                      replace={"    recipients: []": "    recipients: [dsl@school.example]",
                                               "    dedup_hours: 24": "    dedup_hours: 24\n    digest: false"})
    proxy = start_gateway(tmp_path, policy, origin=origin)
    sessions = session_factory(make_engine(f"sqlite:///{tmp_path / 'gateway.db'}"))
    inbox = Inbox().start()
    notifier = ReportNotifier(sessions, Mailer("127.0.0.1", inbox.port), policy, CONSOLE, poll_seconds=0.2).start()
    yield proxy, sessions, inbox
    notifier.stop()
    inbox.stop()
    proxy.stop()


def visit(proxy: Mitmdump, url: str, source: str = PUPIL) -> int:
    return curl(url, proxy=proxy.proxy_url, ca=proxy.ca_cert_path, source_address=source).status


def reports(sessions: Callable[[], Session], kind: str) -> list[Report]:
    with sessions() as store:
        return list(store.scalars(select(Report).where(Report.kind == kind).order_by(Report.id)))


def test_a_harmful_search_is_mailed_to_the_officer_with_its_term_once(officer, origin) -> None:
    proxy, sessions, inbox = officer
    assert visit(proxy, "https://www.google.co.uk/search?q=how+to+kill+myself") == 403
    (mail,) = inbox.wait_for(1, timeout=15)
    body = mail.get_content()
    assert mail["Subject"] == f"Safeguarding alert: suicide — someone not signed in, at {PUPIL}"
    assert "A high-risk report from the school web gateway: a search for terms in this category." in body
    assert "Searched:  how to kill myself" in body and "Matched:" in body
    (report,) = reports(sessions, "search")
    assert f"Open the report: {CONSOLE}/reports/{report.id}" in body
    # The same search again, and another in the same category elsewhere: in the queue, not mailed again.
    assert visit(proxy, "https://www.google.co.uk/search?q=how+to+kill+myself") == 403
    assert visit(proxy, "https://www.youtube.com/results?search_query=how+to+kill+myself") == 403
    deadline = time.monotonic() + 10
    while [r.alert_state for r in reports(sessions, "search")] != ["sent", "skipped"]:
        assert time.monotonic() < deadline, [(r.host, r.alert_state, r.hits) for r in reports(sessions, "search")]
        time.sleep(0.1)
    assert reports(sessions, "search")[0].hits == 2 and len(inbox.messages) == 1
    assert not origin.seen(host="www.google.co.uk")


def test_an_illegal_list_attempt_reaches_the_officer_by_mail_once(officer, origin) -> None:
    proxy, sessions, inbox = officer
    for _ in range(3):
        assert visit(proxy, "https://illegal-content.test/some/page") == 403
    (mail,) = inbox.wait_for(1, timeout=15)
    body = mail.get_content()
    assert mail["To"] == "dsl@school.example"
    assert mail["Subject"] == f"Safeguarding alert: child sexual abuse material — someone not signed in, at {PUPIL}"
    assert "an attempt to reach a site on an illegal-content list" in body
    assert "Address:   https://illegal-content.test" in body and f"{CONSOLE}/reports/" in body
    assert not origin.seen(host="illegal-content.test")
    # The three attempts are one report, mailed once.
    time.sleep(1.0)
    assert len(inbox.messages) == 1
    deadline = time.monotonic() + 15
    while [r.alert_state for r in reports(sessions, "illegal_attempt")] != ["sent"]:
        assert time.monotonic() < deadline, [r.alert_state for r in reports(sessions, "illegal_attempt")]
        time.sleep(0.2)
    (report,) = reports(sessions, "illegal_attempt")
    # Each attempt logs its CONNECT and the request inside it: every row counts on the one report.
    assert (report.alert_state, report.category) == ("sent", "child_abuse") and report.hits >= 3


def test_a_flagged_visit_in_a_high_risk_list_alerts_and_one_in_another_list_waits_in_the_queue(officer, origin):
    # Staff are flagged, not blocked, on the self-harm and violence lists: the self-harm visit is mailed at once
    # (reports.alerts.high_risk), the violence one is only in the queue.
    proxy, sessions, inbox = officer
    assert visit(proxy, "https://sanctioned-suicide.net/threads", STAFF) == 200
    assert visit(proxy, "https://bestgore.com/", STAFF) == 200
    (mail,) = inbox.wait_for(1, timeout=15)
    assert mail["Subject"].startswith("Safeguarding alert: self") and STAFF in mail["Subject"]
    assert "sanctioned-suicide.net" in mail.get_content()
    # The mail server has the mail a moment before the notifier's transaction marks it sent.
    wanted = {"sanctioned-suicide.net": ("self_harm", "sent"), "bestgore.com": ("violence", "none")}
    deadline = time.monotonic() + 15
    while (states := {r.host: (r.category, r.alert_state) for r in reports(sessions, "flagged_site")}) != wanted:
        assert time.monotonic() < deadline, states
        time.sleep(0.2)
    assert len(inbox.messages) == 1
