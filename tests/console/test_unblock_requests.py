"""Unblock requests through the console's test client: a pupil asks from the block page's link, the officer
forwards, the headteacher approves (narrowing, never widening), the grant is in the store and lets the pupil
through the decision engine, the pupil is e-mailed through a real SMTP server (aiosmtpd), and every step is
audited. And the moves a pupil might try: another device's form, a changed or expired token, an unliftable site.
"""

from __future__ import annotations

import re
import socket
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import insert, select

from gateway.decisions.engine import decide_target
from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.identity.sessions import start_session
from gateway.identity.types import Identity, IdentitySource
from gateway.policy.compiled import load_compiled
from gateway.policy.store_grants import compile_store_grants
from gateway.store.engine import make_engine, session_factory
from gateway.store.access_rows import access_row
from gateway.store.grants import grants_in_force
from gateway.store.models.access_log import AccessLogEntry
from gateway.store.models.audit import AuditEvent
from gateway.store.models.unblock_requests import UnblockRequest
from gateway.web import unblock_token
from gateway.web.app import ConsoleConfig, create_app
from tests.console.seed import PASSWORD, seed
from tests.support.policies import always_lesson_policy

AMY_IP = "10.1.2.3"
UNKNOWN_IP = "10.1.9.9"
POLICY = always_lesson_policy(
    """\
school: {name: Test Primary School, contact: the e-safety officer}
groups: {pupil: {}, guest: {}}
default_group: guest
networks:
  - {name: wifi, subnets: [10.1.0.0/16], group: guest, identity: [portal, subnet]}
""",
    """\
lists:
  games: {domains: [games.example]}
  banned: {domains: [facebook.com], unliftable: true}
rules:
  - {id: no-games, lists: [games], action: block, reason: Games are not allowed in lessons}
  - {id: no-banned, lists: [banned], action: block, reason: Not on the school network}
""",
)


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():  # type: ignore[no-untyped-def]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def app(tmp_path: Path, smtp):  # type: ignore[no-untyped-def]
    url = seed(tmp_path)
    with session_factory(make_engine(url)).begin() as s:
        import_people(s, [Person("amy", "Amy Jones", "pupil", year_group=5, school_class="5B",
                                 email="amy@school.example")])
        start_session(s, client_ip=AMY_IP, source=IdentitySource.PORTAL, username="amy", now=datetime.now(UTC))
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    controller, _ = smtp
    app = create_app(ConsoleConfig(db_url=url, secret_key_file=str(tmp_path / "secret"), policy_path=str(policy),
                                   smtp_host="127.0.0.1", smtp_port=controller.port,
                                   mail_from="gateway@school.example"))
    app.config.update(DB_URL=url, POLICY=str(policy))
    return app


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def field(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]+)"', html).group(1)


def staff(app, role: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = client.get("/sign-in").get_data(as_text=True)
    client.post("/sign-in", data={"username": role, "password": PASSWORD, "csrf_token": csrf(page)})
    return client


def ask(client, url: str, ip: str = AMY_IP, **form: str):  # type: ignore[no-untyped-def]
    env = {"REMOTE_ADDR": ip}
    page = client.get("/request", query_string={"url": url, "rule": "no-games", "ref": "r-1"}, environ_base=env)
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html
    data = {"csrf_token": csrf(html), "token": field(html, "token"), "why": "Our coding lesson uses it",
            "extent": "page", "audience": "me", "duration": "today"} | form
    return html, client.post("/request", data=data, environ_base=env)


def requests(app) -> list[UnblockRequest]:  # type: ignore[no-untyped-def]
    with session_factory(make_engine(app.config["DB_URL"]))() as s:
        return list(s.scalars(select(UnblockRequest).order_by(UnblockRequest.id)))


def audit_actions(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with session_factory(make_engine(app.config["DB_URL"]))() as s:
        return [(e.actor, e.action) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))
                if e.action.startswith(("unblock", "grant"))]


def amy_decision(app, url: str = "http://games.example/play"):  # type: ignore[no-untyped-def]
    compiled = load_compiled(app.config["POLICY"])
    now = datetime.now(UTC)
    with session_factory(make_engine(app.config["DB_URL"]))() as s:
        grants, _ = grants_in_force(s, now)
    exceptions, problems = compile_store_grants(compiled, [g.grant for g in grants])
    assert not problems
    amy = Identity(group="pupil", username="amy", school_class="5B", year_group=5)
    return decide_target(compiled, amy, url, now, exceptions)


def test_pupil_asks_officer_forwards_headteacher_approves_and_pupil_is_emailed(app, smtp) -> None:
    _, inbox = smtp
    pupil = app.test_client()
    html, sent = ask(pupil, "http://games.example/play?level=2")
    assert "Amy Jones" in html and "Games are not allowed in lessons" in html
    assert sent.status_code == 200 and "Request sent" in sent.get_data(as_text=True)
    (row,) = requests(app)
    assert (row.username, row.host, row.rule, row.status, row.reference) == ("amy", "games.example", "no-games",
                                                                              "new", "r-1")
    assert amy_decision(app).blocked

    officer = staff(app, "officer")
    queue = officer.get("/unblock/").get_data(as_text=True)
    assert "Request 1" in queue and "games.example" in queue
    detail = officer.get("/unblock/1").get_data(as_text=True)
    assert "Our coding lesson uses it" in detail
    # The officer cannot decide; the headteacher cannot triage.
    token = csrf(detail)
    assert officer.post("/unblock/1/decide", data={"csrf_token": token, "action": "approve"}).status_code == 403
    forwarded = officer.post("/unblock/1/triage", data={"csrf_token": token, "action": "forward",
                                                        "recommendation": "approve", "note": "Fine for coding"})
    assert forwarded.status_code == 302
    assert requests(app)[0].status == "forwarded"

    head = staff(app, "headteacher")
    page = head.get("/unblock/1").get_data(as_text=True)
    assert "recommends approve" in page
    token = csrf(page)
    # Widening what was asked (this page, for Amy, today) is refused; narrowing to this lesson is allowed.
    widened = head.post("/unblock/1/decide", data={"csrf_token": token, "action": "approve", "audience": "school"})
    assert widened.status_code == 400 and requests(app)[0].status == "forwarded"
    approved = head.post("/unblock/1/decide", data={"csrf_token": token, "action": "approve", "extent": "page",
                                                    "audience": "me", "duration": "lesson", "note": "Enjoy"})
    assert approved.status_code == 302
    row = requests(app)[0]
    assert row.status == "approved" and row.grant_number is not None and row.decided_by == "headteacher"
    assert not amy_decision(app).blocked
    # Only Amy, only that host.
    with session_factory(make_engine(app.config["DB_URL"]))() as s:
        (stored,) = grants_in_force(s, datetime.now(UTC))[0]
    assert stored.grant.users == ["amy"] and stored.grant.domains == ["games.example"]
    assert stored.grant.approved_by == "headteacher"
    # Twice is not possible: the request has been decided.
    again = head.post("/unblock/1/decide", data={"csrf_token": token, "action": "reject", "note": "no"})
    assert again.status_code == 409 and "no longer waiting" in again.get_data(as_text=True)

    deadline = time.monotonic() + 5
    while not inbox.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    (mail,) = inbox.messages
    assert mail["To"] == "amy@school.example" and "approved" in mail["Subject"]
    assert "Enjoy" in mail.get_payload()
    # The pupil sees the outcome when they come back to the form.
    mine = pupil.get("/request", environ_base={"REMOTE_ADDR": AMY_IP}).get_data(as_text=True)
    assert "games.example" in mine and "approved" in mine

    assert audit_actions(app) == [("amy", "unblock_requested"), ("officer", "unblock_request_viewed"),
                                  ("officer", "unblock_forwarded"), ("headteacher", "unblock_request_viewed"),
                                  ("headteacher", "unblock_approved"), ("headteacher", "unblock_mail_sent")]


def test_headteacher_ends_a_grant_early_and_the_officer_cannot(app) -> None:
    ask(app.test_client(), "http://games.example/")
    officer = staff(app, "officer")
    officer.post("/unblock/1/triage", data={"csrf_token": csrf(officer.get("/unblock/1").get_data(as_text=True)),
                                            "action": "forward", "recommendation": "approve"})
    head = staff(app, "headteacher")
    head.post("/unblock/1/decide", data={"csrf_token": csrf(head.get("/unblock/1").get_data(as_text=True)),
                                         "action": "approve"})
    grant = requests(app)[0].grant_number
    listing = officer.get("/grants/").get_data(as_text=True)
    assert f"grant-{grant}" in listing and "headteacher" in listing and "End grant" not in listing
    assert officer.post(f"/grants/{grant}/end", data={"csrf_token": csrf(listing)}).status_code == 403
    page = head.get("/grants/").get_data(as_text=True)
    assert f"End grant-{grant} now" in page
    assert head.post(f"/grants/{grant}/end", data={"csrf_token": csrf(page)}).status_code == 302
    assert "No grants are in force" in head.get("/grants/").get_data(as_text=True)
    assert amy_decision(app).blocked
    assert ("headteacher", "grant_ended") in audit_actions(app)


def test_officer_rejects_or_asks_for_more_and_the_pupil_is_told(app, smtp) -> None:
    _, inbox = smtp
    pupil = app.test_client()
    ask(pupil, "http://games.example/a")
    ask(pupil, "http://games.example/b")
    officer = staff(app, "officer")
    token = csrf(officer.get("/unblock/1").get_data(as_text=True))
    # A rejection without a reason is refused: the pupil must be told why.
    assert officer.post("/unblock/1/triage", data={"csrf_token": token, "action": "reject"}).status_code == 400
    officer.post("/unblock/1/triage", data={"csrf_token": token, "action": "reject", "note": "Not for school"})
    officer.post("/unblock/2/triage", data={"csrf_token": token, "action": "more_info", "note": "Which lesson?"})
    assert [r.status for r in requests(app)] == ["rejected", "more_info"]
    mine = pupil.get("/request", environ_base={"REMOTE_ADDR": AMY_IP}).get_data(as_text=True)
    assert "Not for school" in mine and "Which lesson?" in mine
    deadline = time.monotonic() + 5
    while len(inbox.messages) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(m["Subject"] for m in inbox.messages) == [
        "Your request for games.example: not approved",
        "Your request for games.example: waiting for more information from you"]


def test_a_form_from_another_device_or_with_a_changed_or_old_token_is_refused(app, monkeypatch) -> None:
    pupil = app.test_client()
    html = pupil.get("/request", query_string={"url": "http://games.example/"},
                     environ_base={"REMOTE_ADDR": AMY_IP}).get_data(as_text=True)
    token = field(html, "token")
    data = {"csrf_token": csrf(html), "why": "x", "extent": "page", "audience": "me", "duration": "today"}
    # Another pupil's device posting Amy's form (to make a request in her name) is refused.
    other = pupil.post("/request", data=data | {"token": token}, environ_base={"REMOTE_ADDR": "10.1.7.7"})
    assert other.status_code == 400 and "another device" in other.get_data(as_text=True)
    # Changing the URL inside the token breaks its signature.
    payload, _, rest = token.partition(".")
    forged = pupil.post("/request", data=data | {"token": payload[:-2] + "AA." + rest},
                        environ_base={"REMOTE_ADDR": AMY_IP})  # fmt: skip
    assert forged.status_code == 400 and "changed" in forged.get_data(as_text=True)
    monkeypatch.setattr(unblock_token, "LIFETIME_SECONDS", -1)
    old = pupil.post("/request", data=data | {"token": token}, environ_base={"REMOTE_ADDR": AMY_IP})
    assert old.status_code == 400 and "expired" in old.get_data(as_text=True)
    assert requests(app) == []


def test_an_unliftable_site_cannot_be_asked_for(app) -> None:
    pupil = app.test_client()
    page = pupil.get("/request", query_string={"url": "https://www.facebook.com/"},
                     environ_base={"REMOTE_ADDR": AMY_IP})
    assert page.status_code == 403 and "can never be unblocked" in page.get_data(as_text=True)
    # A token for it (as if minted before the list was marked unliftable) is refused by the server too.
    with app.test_request_context():
        token = unblock_token.mint({"ip": AMY_IP, "username": "amy", "name": "Amy Jones", "group": "pupil",
                                    "class": "5B", "year": 5, "url": "https://www.facebook.com/",
                                    "host": "www.facebook.com", "rule": "no-banned", "list": "banned", "ref": None})
    html = pupil.get("/request", query_string={"url": "http://games.example/"},
                     environ_base={"REMOTE_ADDR": AMY_IP}).get_data(as_text=True)
    refused = pupil.post("/request", data={"csrf_token": csrf(html), "token": token, "why": "x", "extent": "page",
                                           "audience": "me", "duration": "today"}, environ_base={"REMOTE_ADDR": AMY_IP})
    assert refused.status_code == 403 and "can never be unblocked" in refused.get_data(as_text=True)
    assert requests(app) == []


def test_pages_that_are_not_blocked_and_addresses_that_are_not_pages(app) -> None:
    pupil = app.test_client()
    env = {"REMOTE_ADDR": AMY_IP}
    allowed = pupil.get("/request?url=http://example.org/", environ_base=env).get_data(as_text=True)
    assert "not blocked for you" in allowed
    for bad in ("javascript:alert(1)", "http://user@games.example/", "ftp://games.example/"):
        assert pupil.get("/request", query_string={"url": bad}, environ_base=env).status_code == 400, bad


def test_an_unknown_device_types_a_name_and_cannot_ask_for_itself_alone(app) -> None:
    pupil = app.test_client()
    html, sent = ask(pupil, "http://games.example/", ip=UNKNOWN_IP, audience="me", name="Visitor Vic")
    assert 'name="name"' in html and 'value="me"' not in html
    assert sent.status_code == 400 and "Visitor Vic" in sent.get_data(as_text=True)  # what was typed comes back
    _, sent = ask(pupil, "http://games.example/", ip=UNKNOWN_IP, audience="group", name="Visitor Vic")
    assert sent.status_code == 200
    (row,) = requests(app)
    assert (row.username, row.display_name, row.group_name) == (None, "Visitor Vic", "guest")


def test_teachers_and_it_have_no_queue(app) -> None:
    for role in ("teacher", "it", "dpo"):
        client = staff(app, role)
        assert client.get("/unblock/").status_code == 403, role
        assert client.get("/grants/").status_code == 403, role
    assert app.test_client().get("/unblock/").status_code == 302


def test_pupil_answers_the_officers_question_and_nobody_else_can(app) -> None:
    pupil = app.test_client()
    ask(pupil, "http://games.example/")
    officer = staff(app, "officer")
    token = csrf(officer.get("/unblock/1").get_data(as_text=True))
    officer.post("/unblock/1/triage", data={"csrf_token": token, "action": "more_info", "note": "Which lesson?"})
    mine = pupil.get("/request", environ_base={"REMOTE_ADDR": AMY_IP}).get_data(as_text=True)
    # Someone on another device cannot answer for Amy.
    other = app.test_client()
    page = other.get("/request", query_string={"url": "http://games.example/"},
                     environ_base={"REMOTE_ADDR": UNKNOWN_IP}).get_data(as_text=True)
    refused = other.post("/request/1/more", data={"csrf_token": csrf(page), "information": "<b>hacked</b>"},
                         environ_base={"REMOTE_ADDR": UNKNOWN_IP})  # fmt: skip
    assert refused.status_code == 404 and requests(app)[0].status == "more_info"
    answered = pupil.post("/request/1/more", data={"csrf_token": csrf(mine), "information": "Computing, Tuesday"},
                          environ_base={"REMOTE_ADDR": AMY_IP})  # fmt: skip
    assert answered.status_code == 200 and "Answer sent" in answered.get_data(as_text=True)
    (row,) = requests(app)
    assert row.status == "new" and "Computing, Tuesday" in row.why
    assert "Computing, Tuesday" in officer.get("/unblock/1").get_data(as_text=True)
    assert ("amy", "unblock_information_added") in audit_actions(app)


def test_what_a_pupil_types_is_shown_to_staff_as_text(app) -> None:
    ask(app.test_client(), "http://games.example/", why="<script>alert('x')</script>")
    page = staff(app, "officer").get("/unblock/1").get_data(as_text=True)
    assert "<script>alert(" not in page and "&lt;script&gt;alert(" in page


def test_a_device_cannot_flood_the_officers_queue(app) -> None:
    pupil = app.test_client()
    for _ in range(10):
        assert ask(pupil, "http://games.example/")[1].status_code == 200
    _, refused = ask(pupil, "http://games.example/")
    assert refused.status_code == 429 and "10 requests in the last hour" in refused.get_data(as_text=True)
    assert len(requests(app)) == 10


TIMETABLE_POLICY = """\
school: {name: Test School, contact: the officer}
groups: {pupil: {}}
default_group: pupil
timetable:
  weekly:
    monday: [{start: "09:00", end: "10:00", kind: lesson}, {start: "10:00", end: "10:15", kind: break},
             {start: "10:15", end: "11:15", kind: lesson}]
  terms: [{name: Autumn, start: 2026-09-01, end: 2026-12-18}]
"""


@pytest.mark.parametrize(("at", "duration", "until"), [
    ("2026-11-30T09:30", "lesson", "2026-11-30T10:00"),
    ("2026-11-30T08:00", "lesson", "2026-11-30T10:00"),
    ("2026-11-30T10:05", "lesson", "2026-11-30T11:15"),
    ("2026-11-30T09:30", "today", "2026-12-01T00:00"),
    ("2026-11-30T09:30", "week", "2026-12-07T00:00"),
    ("2026-11-30T09:30", "term", "2026-12-19T00:00"),
])
def test_how_long_a_grant_lasts_follows_the_school_timetable(tmp_path: Path, at: str, duration: str,
                                                             until: str) -> None:  # fmt: skip
    from zoneinfo import ZoneInfo

    from gateway.web.unblock_scope import expires

    path = tmp_path / "policy.yaml"
    path.write_text(TIMETABLE_POLICY)
    london = ZoneInfo("Europe/London")
    now = datetime.fromisoformat(at).replace(tzinfo=london).astimezone(UTC)
    assert expires(duration, now, load_compiled(path)) == datetime.fromisoformat(until).replace(tzinfo=london)


def test_a_mail_server_that_is_down_costs_the_email_not_the_decision(app) -> None:
    from gateway.notify.mail import Mailer

    app.config["GATEWAY_MAILER"] = Mailer("127.0.0.1", free_port())  # nothing listens there
    ask(app.test_client(), "http://games.example/")
    officer = staff(app, "officer")
    token = csrf(officer.get("/unblock/1").get_data(as_text=True))
    done = officer.post("/unblock/1/triage", data={"csrf_token": token, "action": "reject", "note": "No"},
                        follow_redirects=True)  # fmt: skip
    assert done.status_code == 200 and "could not be e-mailed" in done.get_data(as_text=True)
    assert requests(app)[0].status == "rejected"
    assert ("officer", "unblock_mail_failed") in audit_actions(app)


def test_a_policy_file_that_does_not_load_pauses_requests_with_a_clear_message(app) -> None:
    Path(app.config["POLICY"]).write_text("school: [not, a, school]\n")
    page = app.test_client().get("/request?url=http://games.example/", environ_base={"REMOTE_ADDR": AMY_IP})
    assert page.status_code == 503 and "cannot check requests" in page.get_data(as_text=True)
    assert requests(app) == []


def test_the_officer_sees_what_the_request_would_have_let_through_last_week(app) -> None:
    """Granted as asked (this page, for Amy), the request would have let through Amy's blocks on the site and no
    one else's: a hand-counted week of log rows replayed through the decision engine."""
    ask(app.test_client(), "http://games.example/play", audience="me")
    now = datetime.now(UTC)
    amy = Identity(group="pupil", client_ip=AMY_IP, username="amy", school_class="5B", year_group=5,
                   source=IdentitySource.PORTAL)  # fmt: skip
    other = Identity(group="pupil", client_ip="10.1.2.4", username="ben", school_class="5C", year_group=5,
                     source=IdentitySource.PORTAL)  # fmt: skip
    blocked = Decision(Action.BLOCK, Source.RULE, "Games", PeriodKind.LESSON, "games.example", rule="no-games",
                       list="games", matched="games.example")  # fmt: skip
    rows = [access_row(identity=who, decision=blocked, instant=now - timedelta(days=days), method="GET",
                       scheme="http", host="games.example", path="/play", query="", status=403, size=0,
                       keep_query=False, site="main")
            for who, days in ((amy, 1), (amy, 2), (amy, 3), (other, 1), (amy, 9))]  # fmt: skip
    with session_factory(make_engine(app.config["DB_URL"])).begin() as s:
        s.execute(insert(AccessLogEntry), rows)
    detail = staff(app, "officer").get("/unblock/1").get_data(as_text=True)
    assert "Would have let through <strong>3</strong> blocked requests by\n<strong>1</strong> people" in detail
