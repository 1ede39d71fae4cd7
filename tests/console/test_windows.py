"""Curriculum-activity windows through the console's test client, on SQLite and PostgreSQL: a teacher asks for a
lesson or a few days for a class they teach, the headteacher approves (perhaps narrowing the days), rejects or
closes early, a pre-authorised teacher's window opens at once and waits to be seen. Decisions are checked with the
decision engine against the grants in the store, as every proxy's follower reads them. The attacker's side: a class
they do not teach, unliftable or unknown lists, past or over-long windows, forged and tampered fields, another
teacher's window, roles that must not decide or see."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.decisions.engine import decide_target
from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.identity.types import Identity
from gateway.policy.compiled import load_compiled
from gateway.policy.store_grants import compile_store_grants
from gateway.store.access_rows import access_row
from gateway.store.accounts import create_user
from gateway.store.engine import make_engine, session_factory
from gateway.store.grants import grants_in_force
from gateway.store.models.audit import AuditEvent
from gateway.store.models.windows import CurriculumWindow
from gateway.store.windows import WindowRefused, approve
from gateway.store.windows import ask as ask_in_store
from gateway.store.writer import AccessLogWriter
from gateway.web.app import ConsoleConfig, create_app
from tests.store.databases import db_url, pg_schema_url  # noqa: F401
from tests.support.console import PASSWORD, post, signed_in
from tests.support.policies import MINIMAL

LONDON = ZoneInfo("Europe/London")
AUTUMN_2026 = "terms: [{name: Autumn, start: 2026-09-03, end: 2026-12-18}]"
EVERY_YEAR = "terms: [{name: Always, start: 2000-01-01, end: 2099-12-31}]"
RULES = """\
lists:
  games: {domains: [games.example, coolmath.example]}
  social: {domains: [social.example]}
  forbidden: {domains: [forbidden.example], unliftable: true}
  iwf: {domains: [abuse.example]}
illegal: [iwf]
rules:
  - {id: no-games, lists: [games], action: block, reason: Games are not allowed}
  - {id: no-social, lists: [social], action: block, reason: Social media is not allowed}
  - {id: never, lists: [forbidden], action: block, reason: Not accessible on the network}
curriculum: {preauthorised_teachers: [Mr_Ict], max_window_days: 5}
"""
STAFF = {"teacher": "teacher", "other_teacher": "teacher", "mr_ict": "teacher", "headteacher": "headteacher",
         "officer": "officer", "it": "it", "dpo": "dpo"}  # fmt: skip
PEOPLE = [
    Person("teacher", "Tess Teacher", "staff", teaches=frozenset({"5B"})),
    Person("other_teacher", "Otto Teacher", "staff", teaches=frozenset({"5C"})),
    Person("mr_ict", "Ian Ict", "staff", teaches=frozenset({"5C"})),
    Person("amy", "Amy Jones", "pupil", year_group=5, school_class="5B"),
    Person("carl", "Carl Smith", "pupil", year_group=5, school_class="5C"),
]
PUPILS = {"amy": Identity(group="pupil", username="amy", school_class="5B", year_group=5),
          "carl": Identity(group="pupil", username="carl", school_class="5C", year_group=5)}  # fmt: skip
GAMES = "http://www.games.example/"


def weekday(offset: int) -> date:
    """The `offset`-th weekday after today (1: the next one)."""
    day = date.today()
    while offset:
        day += timedelta(days=1)
        offset -= day.weekday() < 5
    return day


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LONDON).astimezone(UTC)


D1, D2, D3 = weekday(1), weekday(2), weekday(3)


@pytest.fixture
def app(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]  # noqa: F811
    engine = make_engine(db_url)
    with Session(engine) as s, s.begin():
        import_people(s, PEOPLE)
        for username, role in STAFF.items():
            create_user(s, username, username.replace("_", " ").title(), role, PASSWORD)
    engine.dispose()
    policy = tmp_path / "policy.yaml"
    policy.write_text(MINIMAL.replace(AUTUMN_2026, EVERY_YEAR) + RULES)
    app = create_app(ConsoleConfig(db_url=db_url, secret_key_file=str(tmp_path / "secret"), policy_path=str(policy)))
    app.config.update(DB_URL=db_url, POLICY=str(policy))
    return app


def ask(client, **form: object):  # type: ignore[no-untyped-def]
    data = {"school_class": "5B", "lists": ["games"], "domains": "", "when": "lesson", "day": D1.isoformat(),
            "period": "08:50-12:00", "purpose": "Times-tables practice on a maths game"} | form
    return post(client, "/windows/mine", **data)


def page(client, path: str = "/windows/") -> str:  # type: ignore[no-untyped-def]
    return client.get(path).get_data(as_text=True)


def blocked(app, pupil: str, when: datetime, url: str = GAMES) -> bool:  # type: ignore[no-untyped-def]
    compiled = load_compiled(app.config["POLICY"])
    with session_factory(make_engine(app.config["DB_URL"]))() as s:
        grants, _ = grants_in_force(s, datetime.now(UTC))
    exceptions, problems = compile_store_grants(compiled, [g.grant for g in grants])
    assert not problems
    return decide_target(compiled, PUPILS[pupil], url, when, exceptions).blocked


def audit_trail(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with session_factory(make_engine(app.config["DB_URL"]))() as s:
        return [(e.actor, e.action) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))
                if e.action.startswith("window")]  # fmt: skip


def stored(app) -> list[CurriculumWindow]:  # type: ignore[no-untyped-def]
    with session_factory(make_engine(app.config["DB_URL"]))() as s:
        return list(s.scalars(select(CurriculumWindow).order_by(CurriculumWindow.id)))


def test_the_form_offers_only_the_teachers_classes_liftable_lists_and_that_days_lessons(app) -> None:
    teacher = signed_in(app, "teacher")
    form = page(teacher, f"/windows/mine?day={D1.isoformat()}")
    assert '<option value="5B"' in form and '"5C"' not in form
    assert 'value="games"' in form and 'value="social"' in form
    assert 'value="forbidden"' not in form and 'value="iwf"' not in form
    assert '<option value="08:50-12:00"' in form and '<option value="13:00-15:15"' in form
    saturday = D1 + timedelta(days=5 - D1.weekday())
    assert "no lessons that day" in page(teacher, f"/windows/mine?day={saturday.isoformat()}")
    assert signed_in(app, "teacher").get("/windows/mine?day=<b>").status_code == 400


def test_a_lesson_window_lets_that_class_through_in_that_lesson_only(app) -> None:
    teacher, head = signed_in(app, "teacher"), signed_in(app, "headteacher")
    assert ask(teacher).status_code == 302
    assert "asked" in page(teacher, "/windows/mine")
    # Asked is not approved.
    assert blocked(app, "amy", at(D1, 10))
    assert "Times-tables practice" in page(head)

    assert post(head, "/windows/1/approve", note="Fine for maths").status_code == 302
    assert not blocked(app, "amy", at(D1, 10))
    # Not the next class, not outside the lesson asked for, not other lists.
    assert blocked(app, "carl", at(D1, 10))
    assert blocked(app, "amy", at(D1, 13, 30))
    assert blocked(app, "amy", at(D1, 12, 30))
    assert blocked(app, "amy", at(D2, 10))
    assert blocked(app, "amy", at(D1, 10), "http://social.example/")
    mine = page(teacher, "/windows/mine")
    assert "opens later" in mine and "headteacher" in mine and "Fine for maths" in mine
    assert audit_trail(app) == [("teacher", "window_asked"), ("headteacher", "window_approved")]


def test_a_range_of_days_is_lesson_time_only_and_the_head_may_narrow_it_never_widen_it(app) -> None:
    teacher, head = signed_in(app, "teacher"), signed_in(app, "headteacher")
    assert ask(teacher, when="days", first_day=D1.isoformat(), last_day=D3.isoformat(), lists=[],
               domains="coolmath.example").status_code == 302  # fmt: skip
    wider = post(head, "/windows/1/approve", first_day=D1.isoformat(), last_day=(D3 + timedelta(days=1)).isoformat())
    assert wider.status_code == 400 and "never widened" in wider.get_data(as_text=True)
    assert post(head, "/windows/1/approve", first_day=D1.isoformat(), last_day=D2.isoformat()).status_code == 302
    for day in (D1, D2):
        assert not blocked(app, "amy", at(day, 14), "http://coolmath.example/")
        assert blocked(app, "amy", at(day, 12, 30), "http://coolmath.example/")
    assert blocked(app, "amy", at(D3, 14), "http://coolmath.example/")
    # A domain opens that site only, not the rest of its list.
    assert blocked(app, "amy", at(D1, 14))


def test_the_head_rejects_with_a_reason_the_teacher_sees(app) -> None:
    teacher, head = signed_in(app, "teacher"), signed_in(app, "headteacher")
    ask(teacher)
    silent = post(head, "/windows/1/reject", note=" ")
    assert silent.status_code == 400 and "say why" in silent.get_data(as_text=True)
    assert post(head, "/windows/1/reject", note="Use the maths scheme's own site").status_code == 302
    assert "Use the maths scheme&#39;s own site" in page(teacher, "/windows/mine")
    # Decided once: neither approving nor rejecting again changes it.
    assert post(head, "/windows/1/approve").status_code == 400
    assert blocked(app, "amy", at(D1, 10))
    assert [w.status for w in stored(app)] == ["rejected"]


def test_closing_early_ends_the_grant(app) -> None:
    teacher, head = signed_in(app, "teacher"), signed_in(app, "headteacher")
    ask(teacher)
    post(head, "/windows/1/approve")
    assert not blocked(app, "amy", at(D1, 10))
    assert post(head, "/windows/1/close").status_code == 302
    assert blocked(app, "amy", at(D1, 10))
    assert "closed by headteacher" in page(teacher, "/windows/mine")
    assert post(head, "/windows/1/close").status_code == 400
    assert [a for _, a in audit_trail(app)] == ["window_asked", "window_approved", "window_closed"]


def test_only_the_teacher_who_asked_may_withdraw_and_only_while_it_waits(app) -> None:
    teacher, other, head = signed_in(app, "teacher"), signed_in(app, "other_teacher"), signed_in(app, "headteacher")
    ask(teacher)
    ask(teacher, period="13:00-15:15")
    stolen = post(other, "/windows/1/withdraw")
    assert stolen.status_code == 400 and "another teacher" in stolen.get_data(as_text=True)
    # Another teacher's windows are not on their page at all.
    assert "Times-tables" not in page(other, "/windows/mine")
    assert post(teacher, "/windows/1/withdraw").status_code == 302
    assert post(head, "/windows/1/approve").status_code == 400
    post(head, "/windows/2/approve")
    assert post(teacher, "/windows/2/withdraw").status_code == 400
    assert [w.status for w in stored(app)] == ["withdrawn", "open"]
    assert post(teacher, "/windows/99/withdraw").status_code == 404


def test_a_preauthorised_teacher_opens_at_once_and_the_head_sees_it_afterwards(app) -> None:
    ict, head = signed_in(app, "mr_ict"), signed_in(app, "headteacher")
    assert ask(ict, school_class="5C").status_code == 302
    assert not blocked(app, "carl", at(D1, 10))
    assert blocked(app, "amy", at(D1, 10))
    unseen = page(head).split("Opened without approval")[1].split("All windows")[0]
    assert "Window 1" in unseen and "mr_ict" in unseen
    assert post(signed_in(app, "officer"), "/windows/1/seen").status_code == 403
    assert post(head, "/windows/1/seen").status_code == 302
    assert "Window 1" not in page(head).split("Opened without approval")[1].split("All windows")[0]
    assert post(head, "/windows/1/seen").status_code == 400
    # Seen, still open until closed.
    assert not blocked(app, "carl", at(D1, 10))
    assert audit_trail(app) == [("mr_ict", "window_opened_preauthorised"), ("headteacher", "window_seen")]


@pytest.mark.parametrize(("form", "says"), [
    ({"school_class": "5C"}, "does not say you teach"),
    ({"school_class": "<script>x</script>"}, "does not say you teach"),
    ({"lists": ["forbidden"]}, "no exception may lift"),
    ({"lists": ["iwf"]}, "no exception may lift"),
    ({"lists": [], "domains": "abuse.example"}, "no exception may lift"),
    ({"lists": [], "domains": "www.forbidden.example"}, "no exception may lift"),
    ({"lists": ["nosuchlist"]}, "does not have"),
    ({"lists": [], "domains": ""}, "must name lists or domains"),
    ({"lists": [], "domains": "not a domain!"}, "not a valid domain"),
    ({"purpose": "   "}, "say what the activity is for"),
    ({"purpose": "x" * 2001}, "longer than 2000"),
    ({"domains": "a.example " * 300}, "longer than 2000"),
    ({"period": "07:00-08:00"}, "no lesson"),
    ({"day": "2001-01-01"}, "over already"),
    ({"day": (D1 + timedelta(days=5 - D1.weekday())).isoformat()}, "no lesson"),
    ({"day": "tomorrow"}, "YYYY-MM-DD"),
    ({"when": "always"}, "choose a lesson"),
    ({"when": "days", "first_day": "2001-01-01", "last_day": D1.isoformat()}, "in the past"),
    ({"when": "days", "first_day": D3.isoformat(), "last_day": D1.isoformat()}, "before the first"),
    ({"when": "days", "first_day": D1.isoformat(), "last_day": (D1 + timedelta(days=5)).isoformat()}, "at most 5 days"),
])  # fmt: skip
def test_what_may_not_be_asked_is_refused_with_a_reason_and_the_form_kept(app, form: dict[str, object],
                                                                         says: str) -> None:  # fmt: skip
    teacher = signed_in(app, "teacher")
    refused = ask(teacher, **form)
    text = refused.get_data(as_text=True)
    assert refused.status_code == 400 and says in text
    # What the teacher typed comes back, escaped.
    assert "<script>x" not in text
    assert stored(app) == [] and "You have not asked for any windows" in text


def test_a_window_already_over_is_refused_by_the_store_whatever_the_form_sent(app) -> None:
    now = datetime.now(UTC)
    with session_factory(make_engine(app.config["DB_URL"]))() as s:
        with pytest.raises(WindowRefused, match="over already"):
            ask_in_store(s, load_compiled(app.config["POLICY"]), teacher="teacher", school_class="5B", lists=["games"],
                         domains=[], purpose="Maths", starts=now - timedelta(hours=2), ends=now - timedelta(hours=1),
                         now=now)  # fmt: skip


def test_roles_that_must_not_ask_decide_or_see(app) -> None:
    teacher, officer = signed_in(app, "teacher"), signed_in(app, "officer")
    ask(teacher)
    for path in ("/windows/", "/windows/mine", "/windows/1"):
        response = app.test_client().get(path)
        assert response.status_code == 302 and "/sign-in" in response.headers["Location"], path
    for username in ("it", "dpo"):
        client = signed_in(app, username)
        assert client.get("/windows/").status_code == 403
        assert client.get("/windows/mine").status_code == 403
        assert client.get("/windows/1").status_code == 403
        assert "Curriculum windows" not in page(client, "/help").split("</nav>")[0]
    # The teacher cannot see the queue or decide, not even their own window.
    assert teacher.get("/windows/").status_code == 403
    assert teacher.get("/windows/1").status_code == 403
    assert post(teacher, "/windows/1/approve").status_code == 403
    assert post(teacher, "/windows/1/close").status_code == 403
    # The officer sees, read-only.
    assert "Times-tables" in page(officer) and "Approve window" not in page(officer, "/windows/1")
    assert post(officer, "/windows/1/approve").status_code == 403
    assert post(officer, "/windows/1/reject", note="no").status_code == 403
    assert officer.get("/windows/mine").status_code == 403
    assert 'href="/windows/mine"' in page(teacher, "/help") and 'href="/windows/"' in page(officer, "/help")
    assert [w.status for w in stored(app)] == ["asked"]


def test_tampered_ids_forged_fields_and_missing_tokens(app) -> None:
    teacher, head = signed_in(app, "teacher"), signed_in(app, "headteacher")
    # A forged teacher field is ignored: the window is the signed-in teacher's.
    ask(teacher, teacher="other_teacher", status="open", preauthorised="yes")
    [window] = stored(app)
    assert (window.teacher, window.status, window.preauthorised, window.grant_number) == ("teacher", "asked", False,
                                                                                           None)  # fmt: skip
    for path in ("/windows/99/approve", "/windows/99/reject", "/windows/99/close", "/windows/99/seen"):
        assert post(head, path, note="x").status_code == 404
    assert head.get("/windows/99").status_code == 404
    assert head.get("/windows/1%20or%201=1").status_code == 404
    assert head.post("/windows/1/approve", data={}).status_code == 400
    assert teacher.post("/windows/mine", data={"school_class": "5B", "purpose": "x"}).status_code == 400
    assert [w.status for w in stored(app)] == ["asked"]


def test_a_window_for_a_class_the_teacher_no_longer_teaches_is_not_approved(app) -> None:
    ask(signed_in(app, "teacher"))
    with session_factory(make_engine(app.config["DB_URL"])).begin() as s:
        import_people(s, [replace(person, teaches=frozenset({"6A"})) if person.username == "teacher" else person
                          for person in PEOPLE])  # fmt: skip
    refused = post(signed_in(app, "headteacher"), "/windows/1/approve")
    assert refused.status_code == 400 and "no longer says teacher teaches 5B" in refused.get_data(as_text=True)
    assert blocked(app, "amy", at(D1, 10)) and [w.status for w in stored(app)] == ["asked"]


def test_a_teacher_who_is_also_the_approver_cannot_approve_their_own(app) -> None:
    teacher = signed_in(app, "teacher")
    ask(teacher)
    with session_factory(make_engine(app.config["DB_URL"]))() as s:
        with pytest.raises(WindowRefused, match="someone other than the teacher"):
            approve(s, load_compiled(app.config["POLICY"]), 1, by="Teacher", note="", now=datetime.now(UTC))


def test_markup_in_the_purpose_comes_back_as_text(app) -> None:
    teacher, head = signed_in(app, "teacher"), signed_in(app, "headteacher")
    ask(teacher, purpose="<script>alert('x')</script> coding club")
    for html in (page(head), page(head, "/windows/1"), page(teacher, "/windows/mine")):
        assert "<script>alert" not in html and "&lt;script&gt;alert(&#39;x&#39;)" in html


def test_the_head_sees_what_the_window_would_have_let_through_last_week(app, tmp_path: Path) -> None:
    """Hand-counted: in last week's lesson time 5B's Amy was blocked twice on games.example and once on
    social.example, 5C's Carl once on games.example. A 5B games window would have let through Amy's two."""
    last_school_day = next(day for n in range(1, 8) if (day := date.today() - timedelta(days=n)).weekday() < 5)
    lesson = at(last_school_day, 10)
    writer = AccessLogWriter(app.config["DB_URL"], tmp_path / "spool").start()
    for n, (pupil, host, list_name) in enumerate([("amy", "www.games.example", "games"),
                                                  ("amy", "coolmath.example", "games"),
                                                  ("amy", "social.example", "social"),
                                                  ("carl", "www.games.example", "games")]):  # fmt: skip
        decision = Decision(Action.BLOCK, Source.RULE, "test", PeriodKind.LESSON, host, rule="no-" + list_name,
                            list=list_name)  # fmt: skip
        writer.submit(access_row(identity=PUPILS[pupil], decision=decision, instant=lesson + timedelta(minutes=n),
                                 method="GET", scheme="https", host=host, path="/", query="", status=403, size=0,
                                 keep_query=False, site="main"))  # fmt: skip
    writer.close()
    teacher, head = signed_in(app, "teacher"), signed_in(app, "headteacher")
    ask(teacher)
    html = page(head, "/windows/1")
    impact = re.sub(r"\s+", " ", html.split('id="window-impact">')[1].split("</p>")[0])
    assert impact == ("Would have let through <strong>2</strong> blocked requests by <strong>1</strong> people to "
                      "<strong>2</strong> hosts; <strong>0</strong> of them flagged to the officer.")  # fmt: skip
    assert "www.games.example: 1" in html and "coolmath.example: 1" in html and "social.example:" not in html
    assert audit_trail(app)[-1] == ("headteacher", "window_viewed")


def test_a_form_without_its_csrf_token_is_refused(app) -> None:
    teacher = signed_in(app, "teacher")
    form = {"school_class": "5B", "lists": "games", "when": "lesson", "day": D1.isoformat(), "period": "08:50-12:00",
            "purpose": "x"}  # fmt: skip
    refused = teacher.post("/windows/mine", data=form)
    assert refused.status_code == 400 and stored(app) == []
