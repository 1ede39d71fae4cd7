"""`/report` through the console's test client: a pupil reports a page from their device (known by the address the
proxy passes), a stranger reports anonymously, staff signed in record a contact attempt for the headteacher; and
what a pupil might try: no CSRF token, markup in every field, over-long addresses, a flood, the contact form
without signing in."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.identity.sessions import start_session
from gateway.identity.types import IdentitySource
from gateway.store.engine import make_engine, session_factory
from gateway.store.models.audit import AuditEvent
from gateway.store.models.reports import Report
from gateway.web.app import ConsoleConfig, create_app
from gateway.web.report_page import MAX_PER_HOUR
from tests.console.seed import seed
from tests.support.console import csrf, signed_in
from tests.support.policies import always_lesson_policy

AMY_IP = "10.1.2.3"
STRANGER_IP = "10.1.9.9"
HOSTILE = "<script>alert('x')</script>"
POLICY = always_lesson_policy(
    """\
school: {name: Test Primary School, contact: the e-safety officer}
groups: {pupil: {}, guest: {}}
default_group: guest
networks:
  - {name: wifi, subnets: [10.1.0.0/16], group: guest, identity: [portal, subnet]}
reports:
  alerts: {recipients: [dsl@school.example]}
""",
    "rules: []\n",
)


@pytest.fixture
def app(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = seed(tmp_path)
    with session_factory(make_engine(url)).begin() as s:
        import_people(s, [Person("amy", "Amy Jones", "pupil", year_group=5, school_class="5B")])
        start_session(s, client_ip=AMY_IP, source=IdentitySource.PORTAL, username="amy", now=datetime.now(UTC))
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    app = create_app(ConsoleConfig(db_url=url, secret_key_file=str(tmp_path / "secret"), policy_path=str(policy)))
    app.config.update(DB_URL=url)
    return app


def reports(app) -> list[Report]:  # type: ignore[no-untyped-def]
    """Reports people filed (the seeded log's flagged visit made one of its own)."""
    with session_factory(make_engine(app.config["DB_URL"]))() as s:
        return list(s.scalars(select(Report).where(Report.kind.in_(("person", "contact"))).order_by(Report.id)))


def audited(app, action: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with session_factory(make_engine(app.config["DB_URL"]))() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def report_page(client, ip: str = AMY_IP, **form: str):  # type: ignore[no-untyped-def]
    env = {"REMOTE_ADDR": ip}
    page = client.get("/report", query_string={"url": form.get("url", "http://bad.example/page")}, environ_base=env)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    data = {"csrf_token": csrf(html), "url": "http://bad.example/page", "category": "adult", "details": ""} | form
    return html, client.post("/report", data=data, environ_base=env)


def test_a_pupil_reports_a_page_and_it_lands_in_the_officers_queue(app) -> None:
    html, sent = report_page(app.test_client(), details="It popped up in a lesson")
    assert 'value="http://bad.example/page"' in html and "Amy Jones" in html
    assert "Report a contact attempt" not in html
    assert sent.status_code == 200 and "Thank you" in sent.get_data(as_text=True)
    (row,) = reports(app)
    assert (row.kind, row.queue, row.status, row.category, row.host) == ("person", "officer", "open", "adult",
                                                                         "bad.example")  # fmt: skip
    assert (row.username, row.display_name, row.school_class, row.client_ip) == ("amy", "Amy Jones", "5B", AMY_IP)
    assert (row.reporter, row.reporter_role, row.details) == ("amy", "pupil", "It popped up in a lesson")
    assert row.alert_state == "none"
    (event,) = audited(app, "report_filed")
    assert (event.actor, event.target) == ("amy", f"report:{row.id}")


def test_a_high_risk_report_is_due_an_alert_and_a_stranger_is_anonymous(app) -> None:
    _, sent = report_page(app.test_client(), ip=STRANGER_IP, category="self_harm")
    assert sent.status_code == 200
    (row,) = reports(app)
    assert (row.username, row.reporter, row.group_name, row.alert_state) == (None, None, "guest", "due")
    assert audited(app, "report_filed")[0].actor == f"anonymous at {STRANGER_IP}"


def test_without_a_csrf_token_the_report_is_refused(app) -> None:
    client = app.test_client()
    refused = client.post("/report", data={"url": "http://bad.example/", "category": "adult"},
                          environ_base={"REMOTE_ADDR": AMY_IP})  # fmt: skip
    assert refused.status_code == 400 and "Form refused" in refused.get_data(as_text=True)
    assert reports(app) == []


def test_markup_in_the_address_and_the_text_is_shown_as_text(app) -> None:
    client = app.test_client()
    page = client.get("/report", query_string={"url": f"http://bad.example/{HOSTILE}"},
                      environ_base={"REMOTE_ADDR": AMY_IP}).get_data(as_text=True)  # fmt: skip
    assert "<script>" not in page and "&lt;script&gt;" in page
    # Markup in the address and the text is stored as typed and shown escaped.
    _, sent = report_page(client, url=f"http://bad.example/{HOSTILE}", details=HOSTILE)
    assert sent.status_code == 200 and "<script>" not in sent.get_data(as_text=True)
    (row,) = reports(app)
    assert (row.url, row.details) == (f"http://bad.example/{HOSTILE}", HOSTILE)
    # Not an address a browser could send (a space): refused, and what was typed comes back escaped.
    _, refused = report_page(client, url=f"http://bad.example/ {HOSTILE}", details=HOSTILE)
    shown = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "not the address of a web page" in shown
    assert "<script>" not in shown and "&lt;script&gt;alert(" in shown
    assert len(reports(app)) == 1


def test_long_and_wrong_addresses_are_refused_with_a_clear_error(app) -> None:
    client = app.test_client()
    long_url = "http://bad.example/" + "a" * 3000
    page = client.get("/report", query_string={"url": long_url}, environ_base={"REMOTE_ADDR": AMY_IP})
    assert page.status_code == 200 and "too long (3019 characters; at most 2000)" in page.get_data(as_text=True)
    _, refused = report_page(client, url=long_url)
    assert refused.status_code == 400 and "too long" in refused.get_data(as_text=True)
    for wrong in ("javascript:alert(1)", "file:///etc/passwd", "http://user@bad.example/", ""):
        _, refused = report_page(client, url=wrong)
        assert refused.status_code == 400, wrong
    _, refused = report_page(client, category="not-a-category", details="x" * 2001)
    text = refused.get_data(as_text=True)
    assert "Choose what was wrong" in text and "under 2000 characters" in text
    assert reports(app) == []


def test_a_flood_from_one_device_is_stopped(app) -> None:
    client = app.test_client()
    for _ in range(MAX_PER_HOUR):
        assert report_page(client)[1].status_code == 200
    _, stopped = report_page(client)
    assert stopped.status_code == 429 and "Tell a teacher" in stopped.get_data(as_text=True)
    # Another device is not held up by this one.
    assert report_page(client, ip=STRANGER_IP)[1].status_code == 200
    assert len(reports(app)) == MAX_PER_HOUR + 1


CONTACT = {"name": "A parent of 5B", "relation": "parent", "service": "Facebook", "when": "2026-11-30T19:45",
           "details": f"Sent me a friend request and a message {HOSTILE}"}  # fmt: skip


def test_staff_record_a_contact_attempt_for_the_headteacher(app) -> None:
    teacher = signed_in(app, "teacher")
    page = teacher.get("/report", environ_base={"REMOTE_ADDR": "10.1.5.5"}).get_data(as_text=True)
    assert "Report a contact attempt" in page
    sent = teacher.post("/report/contact", data={"csrf_token": csrf(page)} | CONTACT,
                        environ_base={"REMOTE_ADDR": "10.1.5.5"})  # fmt: skip
    text = sent.get_data(as_text=True)
    assert sent.status_code == 200 and "Recorded for the headteacher" in text and "<script>" not in text
    (row,) = reports(app)
    assert (row.kind, row.queue, row.status, row.service) == ("contact", "headteacher", "open", "Facebook")
    assert (row.reporter, row.reporter_role) == ("teacher", "teacher")
    assert row.other_party == "A parent of 5B (a parent or carer)"
    assert row.happened_at == datetime(2026, 11, 30, 19, 45, tzinfo=UTC)  # GMT in November
    assert row.details == CONTACT["details"] and row.alert_state == "none"
    (event,) = audited(app, "report_contact_filed")
    assert (event.actor, event.actor_role, event.target) == ("teacher", "teacher", f"report:{row.id}")
    assert json.loads(event.detail)["service"] == "Facebook"


def test_a_contact_report_missing_facts_comes_back_with_what_was_typed(app) -> None:
    teacher = signed_in(app, "teacher")
    token = csrf(teacher.get("/report").get_data(as_text=True))
    refused = teacher.post("/report/contact", data={"csrf_token": token} | CONTACT | {"when": "2999-01-01T10:00",
                                                                                       "relation": "boss"})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "in the future" in text and "pupil, a parent" in text
    assert 'value="A parent of 5B"' in text and "&lt;script&gt;" in text and "<script>" not in text
    assert reports(app) == []


def test_a_pupil_or_a_signed_out_visitor_cannot_file_a_contact_report(app) -> None:
    pupil = app.test_client()
    page = pupil.get("/report", environ_base={"REMOTE_ADDR": AMY_IP}).get_data(as_text=True)
    assert "Report a contact attempt" not in page
    refused = pupil.post("/report/contact", data={"csrf_token": csrf(page)} | CONTACT,
                         environ_base={"REMOTE_ADDR": AMY_IP})  # fmt: skip
    assert refused.status_code == 302 and "/sign-in" in refused.headers["Location"]
    assert reports(app) == [] and audited(app, "report_contact_filed") == []


def test_a_report_is_taken_even_when_the_policy_does_not_load(app) -> None:
    client = app.test_client()
    page = client.get("/report", environ_base={"REMOTE_ADDR": AMY_IP}).get_data(as_text=True)
    Path(app.config["GATEWAY"].policy_path).write_text("school: [not, a, mapping\n")
    sent = client.post("/report", data={"csrf_token": csrf(page), "url": "http://bad.example/", "category": "suicide"},
                       environ_base={"REMOTE_ADDR": AMY_IP})  # fmt: skip
    assert sent.status_code == 200 and "Thank you" in sent.get_data(as_text=True)
    (row,) = reports(app)
    # Filed as from the address, and still due an alert for a high-risk category.
    assert (row.client_ip, row.username, row.group_name, row.alert_state) == (AMY_IP, None, "unknown", "due")
