"""The teacher's view of their own classes, through Flask's test client on SQLite and PostgreSQL and in Chromium:
exactly the pupils of the classes the roster says they teach, today's blocks and flags only, never staff, never
another class, never another role; every look audited."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.directory import import_people
from gateway.identity.people import Person, StaffRole
from gateway.identity.types import Identity
from gateway.store.access_rows import access_row
from gateway.store.accounts import create_user
from gateway.store.class_activity import class_day, local_day
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.teaching import Taught
from gateway.store.models.audit import AuditEvent
from gateway.store.unblock_requests import Asked, add_request
from gateway.store.writer import AccessLogWriter
from gateway.web.app import ConsoleConfig, create_app
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.store.databases import db_url, pg_schema_url  # noqa: F401
from tests.support.console import PASSWORD, signed_in
from tests.support.waitress_thread import waitress_thread

LONDON = ZoneInfo("Europe/London")
HOSTILE_HOST = "<img src=x onerror=alert(1)>.example"
HOSTILE_REASON = "<script>alert('reason')</script>"

PEOPLE = [
    Person("amy", "Amy Adams", "pupils", year_group=5, school_class="5B"),
    Person("bob", "Bob Brown", "pupils", year_group=5, school_class="5B"),
    Person("cara", "Cara Clark", "pupils", year_group=5, school_class="5C"),
    Person("dan", "Dan Dunn", "pupils", year_group=6, school_class="6A"),
    # A leaver (gone from the second import), staff attached to 5B (no year group; a staff role), the teachers.
    Person("lee", "Lee Left", "pupils", year_group=5, school_class="5B"),
    Person("mrs_ta", "Mrs Assistant", "staff", school_class="5B"),
    Person("mr_it", "Mr Laptops", "staff", year_group=5, school_class="5B", roles=frozenset({StaffRole.IT})),
    Person("mr_t", "Mr Teacher", "staff", school_class="5B", roles=frozenset({StaffRole.TEACHER}),
           teaches=frozenset({"5B"})),
    Person("ms_two", "Ms Two Classes", "staff", roles=frozenset({StaffRole.TEACHER}), teaches=frozenset({"5B", "6A"})),
    Person("ms_none", "Ms No Classes", "staff", roles=frozenset({StaffRole.TEACHER})),
]  # fmt: skip
CONSOLE = [("mr_t", "teacher"), ("ms_two", "teacher"), ("ms_none", "teacher"), ("officer", "officer"),
           ("head", "headteacher"), ("dpo", "dpo"), ("it", "it")]  # fmt: skip


def identity(person: Person) -> Identity:
    return Identity(group=person.group, client_ip="10.1.2.3", username=person.username,
                    display_name=person.display_name, school_class=person.school_class, year_group=person.year_group)


def seed(url: str, spool: Path) -> datetime:
    """People, console accounts, requests and a log of today and its neighbours; returns today's local midnight."""
    upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        import_people(session, PEOPLE)
        import_people(session, [p for p in PEOPLE if p.username != "lee"])
        for username, role in CONSOLE:
            create_user(session, username, username.title(), role, PASSWORD)
        for who, host in (("mr_t", "www.scratch.mit.edu"), ("ms_two", "www.other-teacher.example"),
                          ("amy", "www.pupil-request.example")):  # fmt: skip
            add_request(session, Asked(who, who, "10.0.0.9", "staff", None, None, f"https://{host}/", host, "games",
                                       "games", None, "For a lesson", "site", "me", "lesson"), now)  # fmt: skip
    engine.dispose()

    midnight, tomorrow = local_day(datetime.now(LONDON).date(), LONDON)
    by_name = {p.username: p for p in PEOPLE}
    rows = [
        # (who, action, host, reason, minutes after midnight; negative is yesterday)
        ("amy", Action.BLOCK, "www.tiktok.com", "Social media is not allowed", 1),
        ("amy", Action.BLOCK, HOSTILE_HOST, HOSTILE_REASON, 2),
        ("amy", Action.FLAG, "www.google.co.uk", "Search watch", 3),
        ("amy", Action.ALLOW, "www.bbc.co.uk", "allowed", 4),
        ("amy", Action.BLOCK, "www.yesterday.example", "Games", -1),
        ("amy", Action.BLOCK, "www.tomorrow.example", "Games", int((tomorrow - midnight).total_seconds() // 60)),
        ("cara", Action.BLOCK, "www.other-class.example", "Games", 5),
        ("dan", Action.FLAG, "www.six-a.example", "Search watch", 6),
        ("lee", Action.BLOCK, "www.leaver.example", "Games", 7),
        ("mrs_ta", Action.BLOCK, "www.staff-ta.example", "Games", 8),
        ("mr_it", Action.BLOCK, "www.staff-it.example", "Games", 9),
        ("mr_t", Action.BLOCK, "www.staff-teacher.example", "Games", 10),
    ]
    writer = AccessLogWriter(url, spool).start()
    for who, action, host, reason, minutes in rows:
        decision = Decision(action, Source.RULE, reason, PeriodKind.LESSON, host, rule="rule-x", list="x")
        writer.submit(access_row(identity=identity(by_name[who]), decision=decision,
                                 instant=midnight + timedelta(minutes=minutes), method="GET", scheme="https",
                                 host=host, path="/secret-search?q=private", query="", status=403, size=10,
                                 keep_query=False, site="St Mary's"))  # fmt: skip
    writer.close()
    return midnight


@pytest.fixture
def app(db_url, tmp_path):  # type: ignore[no-untyped-def]  # noqa: F811
    seed(db_url, tmp_path / "spool")
    app = create_app(ConsoleConfig(db_url=db_url, secret_key_file=str(tmp_path / "secret"), timezone="Europe/London"))
    app.config["DB_URL"] = db_url
    return app


def audit_rows(app, action: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    engine = make_engine(app.config["DB_URL"])
    with Session(engine) as session:
        rows = list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))
    engine.dispose()
    return rows


def pupil_rows(html: str) -> dict[str, tuple[int, int]]:
    """Each listed pupil's (blocked, flagged), by username."""
    found = re.findall(r'data-pupil="([^"]+)">.*?<td class="blocked">(\d+)</td>\s*<td class="flagged">(\d+)</td>',
                       html, re.S)  # fmt: skip
    return {name: (int(b), int(f)) for name, b, f in found}


def test_a_teacher_sees_exactly_their_class_today(app) -> None:
    client = signed_in(app, "mr_t")
    response = client.get("/my-classes/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    # Amy with today's two blocks and one flag, Bob at zero; nobody from 5C or 6A, no staff, no leaver.
    assert pupil_rows(html) == {"amy": (2, 1), "bob": (0, 0)}
    assert "www.tiktok.com" in html and "www.google.co.uk" in html
    for absent in ("www.yesterday.example", "www.tomorrow.example", "www.bbc.co.uk", "other-class", "six-a",
                   "leaver", "staff-ta", "staff-it", "staff-teacher", "Cara", "Mrs Assistant", "Lee Left"):
        assert absent not in html, absent
    # Where and why, not the page or search words: those stay in the officer's log.
    assert "secret-search" not in html and "private" not in html
    assert 'href="/windows/"' in html


def test_the_teacher_lands_on_their_classes_after_signing_in(app) -> None:
    client = signed_in(app, "mr_t")
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/my-classes/")
    assert '<a href="/my-classes/">My classes</a>' in client.get("/my-classes/").get_data(as_text=True)


def test_every_look_is_audited(app) -> None:
    client = signed_in(app, "mr_t")
    client.get("/my-classes/")
    client.get("/my-classes/?class=5B")
    rows = audit_rows(app, "view_class_activity")
    assert [(r.actor, r.actor_role, r.target) for r in rows] == [("mr_t", "teacher", "class:5B")] * 2
    assert datetime.now(LONDON).date().isoformat() in rows[0].detail


def test_another_class_is_forbidden_and_junk_is_a_clear_error(app) -> None:
    client = signed_in(app, "mr_t")
    for other in ("5C", "6A", "5b", "5B,5C", "nonexistent"):
        response = client.get("/my-classes/", query_string={"class": other})
        assert response.status_code == 403, other
        assert "Cara" not in response.get_data(as_text=True) and "Dan" not in response.get_data(as_text=True)
    for junk in ("x" * 65, "5B\x00", "\n5B", " 5B"):
        response = client.get("/my-classes/", query_string={"class": junk})
        assert response.status_code == 400, junk
        assert "class:" in response.get_data(as_text=True)
    # Nothing was shown, so no look at log data is recorded for these.
    assert audit_rows(app, "view_class_activity") == []


def test_a_teacher_of_two_classes_picks_one_or_sees_both(app) -> None:
    client = signed_in(app, "ms_two")
    both = client.get("/my-classes/").get_data(as_text=True)
    assert pupil_rows(both) == {"amy": (2, 1), "bob": (0, 0), "dan": (0, 1)}
    assert 'href="/my-classes/?class=6A"' in both
    only = client.get("/my-classes/?class=6A").get_data(as_text=True)
    assert pupil_rows(only) == {"dan": (0, 1)}
    assert [r.target for r in audit_rows(app, "view_class_activity")] == ["class:5B,6A", "class:6A"]


def test_a_teacher_with_no_classes_is_told_what_to_do(app) -> None:
    client = signed_in(app, "ms_none")
    html = client.get("/my-classes/").get_data(as_text=True)
    assert "Teaches column" in html and "school office" in html
    assert pupil_rows(html) == {} and "tiktok" not in html
    assert client.get("/my-classes/?class=5B").status_code == 403


def test_a_teacher_sees_only_their_own_unblock_requests(app) -> None:
    html = signed_in(app, "mr_t").get("/my-classes/").get_data(as_text=True)
    assert "www.scratch.mit.edu" in html and "with the e-safety officer" in html
    assert "other-teacher" not in html and "pupil-request" not in html


@pytest.mark.parametrize("role", ["officer", "head", "dpo", "it"])
def test_other_roles_are_refused(app, role: str) -> None:
    client = signed_in(app, role)
    response = client.get("/my-classes/")
    assert response.status_code == 403 and "Amy" not in response.get_data(as_text=True)
    assert 'href="/my-classes/"' not in client.get("/help").get_data(as_text=True)


def test_signed_out_goes_to_sign_in(app) -> None:
    response = app.test_client().get("/my-classes/?class=5B")
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_hostile_host_and_reason_come_back_as_text(app) -> None:
    html = signed_in(app, "mr_t").get("/my-classes/").get_data(as_text=True)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;reason&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;.example" in html


def test_the_detail_is_bounded_newest_first_and_counts_stay_whole(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    midnight = seed(url, tmp_path / "spool")
    engine = make_engine(url)
    with Session(engine) as session:
        (amy, bob) = class_day(session, [Taught("", "5B")], midnight.date(), LONDON, limit=2)
    engine.dispose()
    assert (amy.username, amy.blocked, amy.flagged, amy.more) == ("amy", 2, 1, 1)
    assert [a.host for a in amy.attempts] == ["www.google.co.uk", HOSTILE_HOST]
    assert (bob.username, bob.attempts) == ("bob", [])


def test_the_log_is_read_through_the_person_and_time_index(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    midnight = seed(url, tmp_path / "spool")
    engine = make_engine(url)
    statements: list[tuple[str, object]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def seen(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
        if "access_log" in statement:
            statements.append((statement, parameters))

    with Session(engine) as session:
        class_day(session, [Taught("", "5B")], midnight.date(), LONDON)
    event.remove(engine, "before_cursor_execute", seen)
    assert len(statements) == 2
    with engine.connect() as connection:
        for statement, parameters in statements:
            plan = " ".join(str(r[-1]) for r in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}",
                                                                           parameters))  # fmt: skip
            assert "ix_access_log_username_at" in plan and "SCAN access_log" not in plan, plan
    engine.dispose()


# --- in Chromium --------------------------------------------------------------------------------------------------


@pytest.fixture
def console(tmp_path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    seed(url, tmp_path / "spool")
    app = create_app(ConsoleConfig(db_url=url, secret_key_file=str(tmp_path / "secret")))
    with waitress_thread(app) as server:
        yield f"http://127.0.0.1:{server.effective_port}"


@pytest.mark.browser
def test_a_teacher_signs_in_and_opens_a_pupils_detail_in_chromium(console) -> None:
    import os

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(f"{console}/")
        page.fill("input[name=username]", "mr_t")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        assert page.url.endswith("/my-classes/")
        assert page.locator("h1").inner_text() == "My classes"
        rows = page.locator("table.pupils > tbody > tr")
        assert rows.count() == 2
        amy = page.locator("table.pupils > tbody > tr[data-pupil=amy]")
        assert amy.locator("td.blocked").inner_text() == "2" and amy.locator("td.flagged").inner_text() == "1"
        assert not amy.locator("table.attempts").is_visible()
        amy.locator("summary").click()
        detail = amy.locator("table.attempts")
        assert detail.is_visible()
        assert HOSTILE_HOST in detail.inner_text() and HOSTILE_REASON in detail.inner_text()
        assert "nothing today" in page.locator("tr[data-pupil=bob]").inner_text()
        assert page.locator("nav >> text=My classes").count() == 1
        assert page.locator("text=Access log").count() == 0
        assert page.goto(f"{console}/my-classes/?class=5C").status == 403
        assert dialogs == []
        browser.close()
