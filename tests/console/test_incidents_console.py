"""Circumvention incidents, bans and supervised sessions through the console's test client on a real SQLite file:
who may see and do what, CSRF, the audit trail, bad input changing nothing, evidence shown escaped, and each change
raising the `bans` counter every proxy follows."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.identity.directory import import_people
from gateway.identity.people import Person, StaffRole
from gateway.store.bans import BANS, ban_person, bans_in_force
from gateway.store.engine import make_engine, session_factory
from gateway.store.models.audit import AuditEvent
from gateway.store.models.circumvention import Ban, Incident, SupervisedSession
from gateway.store.versions import versions
from gateway.web.app import ConsoleConfig, create_app
from tests.console.seed import seed
from tests.support.console import post, signed_in
from tests.support.policies import always_lesson_policy

LONDON = ZoneInfo("Europe/London")
HOSTILE = "<script>alert('x')</script>"
POLICY = always_lesson_policy("""\
school: {name: Test Primary School, contact: the e-safety officer}
groups: {pupils: {}, guest: {}}
default_group: guest
networks:
  - {name: wifi, subnets: [10.1.0.0/16], group: pupils}
circumvention: {ban_days: 14}
""")  # fmt: skip
PEOPLE = [
    Person("amy", "Amy Pupil", "pupils", year_group=5, school_class="5B"),
    Person("ben", "Ben Pupil", "pupils", year_group=6, school_class="6A"),
    Person("teacher", "Mr Teacher", "staff", roles=frozenset({StaffRole.TEACHER}), teaches=frozenset({"5B"})),
]


@pytest.fixture
def app(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = seed(tmp_path)
    with Session(make_engine(url)) as s, s.begin():
        import_people(s, PEOPLE)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    app = create_app(ConsoleConfig(db_url=url, secret_key_file=str(tmp_path / "secret"), policy_path=str(policy),
                                   timezone="Europe/London"))  # fmt: skip
    app.config.update(DB_URL=url)
    return app


def store(app) -> Session:  # type: ignore[no-untyped-def]
    return session_factory(make_engine(app.config["DB_URL"]))()


def incident(app, username: str = "amy", **fields: object) -> int:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    people = {"amy": ("Amy Pupil", "5B", 5, "ipad-07", "10.1.2.3"),
              "ben": ("Ben Pupil", "6A", 6, "ipad-08", "10.1.2.4")}
    name, school_class, year, device, ip = people[username]
    values = {"created_at": now - timedelta(minutes=5), "last_seen_at": now, "hits": 3, "username": username,
              "display_name": name, "group_name": "pupils", "school_class": school_class, "year_group": year,
              "device": device, "client_ip": ip, "person_key": f"user:{username}", "technique": "doh",
              "detector": "doh-content-type", "confidence": "high", "host": "dns.example", "sni": "dns.example",
              "url": "https://dns.example/dns-query", "user_agent": "Mozilla/5.0 (iPad)",
              "evidence": json.dumps({"content_type": "application/dns-message"}), "status": "open",
              "notice_state": "sent", "notice_attempts": 1, "notice_sent_at": now} | fields  # fmt: skip
    with store(app) as s, s.begin():
        row = Incident(**values)
        s.add(row)
        s.flush()
        return row.id


def ban(app, username: str = "amy") -> int:  # type: ignore[no-untyped-def]
    with store(app) as s, s.begin():
        return ban_person(s, username=username, display_name=username.title(), reason="test", created_by="head",
                          now=datetime.now(UTC)).id  # fmt: skip


def get(app, model, number: int):  # type: ignore[no-untyped-def]
    with store(app) as s:
        return s.get(model, number)


def audited(app, action: str) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with store(app) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def bans_counter(app) -> int:  # type: ignore[no-untyped-def]
    with store(app) as s:
        return versions(s, [BANS])[BANS]


def test_the_officer_sees_the_incident_its_evidence_and_the_persons_recent_activity(app) -> None:
    number = incident(app)
    officer = signed_in(app, "officer")
    listing = officer.get("/incidents/").get_data(as_text=True)
    assert f"Incident {number}" in listing and "Amy Pupil (amy)" in listing and "DNS over HTTPS" in listing
    assert "dns.example" in listing and audited(app, "incidents_viewed")[-1].actor == "officer"
    page = officer.get(f"/incidents/{number}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "doh-content-type, confidence high" in html and "application/dns-message" in html
    assert "Mozilla/5.0 (iPad)" in html and "class 5B" in html and "ipad-07" in html
    # The person's recent activity comes from the log, and reading it is audited as a log view.
    assert "www.tiktok.com/@someone" in html and "www.bbc.co.uk/bitesize" in html
    (look,) = audited(app, "view_log")
    assert (look.actor, look.target, json.loads(look.detail)["incident"]) == ("officer", "person:amy", number)
    assert [e.target for e in audited(app, "incident_viewed")] == [f"incident:{number}"]
    # The officer sees; only the headteacher decides.
    assert "Confirm and ban" not in html and "dismiss-form" not in html
    assert post(officer, f"/incidents/{number}/confirm", ends_on="2099-01-01").status_code == 403
    # Filters.
    assert f"Incident {number}" not in officer.get("/incidents/?technique=vpn_client").get_data(as_text=True)
    assert f"Incident {number}" in officer.get("/incidents/?person=Amy").get_data(as_text=True)
    assert f"Incident {number}" not in officer.get("/incidents/?person=ben").get_data(as_text=True)
    assert officer.get("/incidents/?status=nonsense").status_code == 400
    assert officer.get("/incidents/?technique=<b>").status_code == 400


@pytest.mark.parametrize(("role", "incidents", "bans"), [
    ("officer", 200, 200), ("headteacher", 200, 200), ("dpo", 403, 403), ("teacher", 403, 403), ("it", 403, 403),
])  # fmt: skip
def test_who_may_see_incidents_and_bans(app, role, incidents, bans) -> None:
    number = incident(app)
    client = signed_in(app, role)
    assert client.get("/incidents/").status_code == incidents
    assert client.get(f"/incidents/{number}").status_code == incidents
    assert client.get("/bans/").status_code == bans
    nav = client.get("/help").get_data(as_text=True)
    assert ('href="/incidents/"' in nav) == (incidents == 200) and ('href="/bans/"' in nav) == (bans == 200)


def test_signed_out_is_sent_to_sign_in(app) -> None:
    for path in ("/incidents/", "/bans/"):
        response = app.test_client().get(path)
        assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


@pytest.mark.parametrize("role", ["officer", "dpo", "teacher", "it"])
def test_only_the_headteacher_confirms_or_dismisses(app, role) -> None:
    number = incident(app)
    client = signed_in(app, role)
    assert post(client, f"/incidents/{number}/confirm", ends_on="2099-01-01").status_code == 403
    assert post(client, f"/incidents/{number}/dismiss", reason="no").status_code == 403
    assert get(app, Incident, number).status == "open" and bans_counter(app) == 0


def test_the_headteacher_confirms_and_the_pupil_is_banned_until_the_day_given(app) -> None:
    number = incident(app)
    head = signed_in(app, "headteacher")
    page = head.get(f"/incidents/{number}").get_data(as_text=True)
    default = (datetime.now(LONDON).date() + timedelta(days=14)).isoformat()
    assert f'value="{default}"' in page and "Confirm and ban" in page
    ends_on = (datetime.now(LONDON).date() + timedelta(days=10)).isoformat()
    response = post(head, f"/incidents/{number}/confirm", ends_on=ends_on, note="Seen on the iPad")
    assert response.status_code == 302
    assert get(app, Incident, number).status == "confirmed" and bans_counter(app) == 1
    with store(app) as s:
        (in_force,) = bans_in_force(s, datetime.now(UTC))
    assert in_force.username == "amy"
    assert in_force.ends_at == datetime.combine(date.fromisoformat(ends_on), datetime.min.time(), LONDON)
    (event,) = audited(app, "incident_confirmed")
    assert (event.actor, event.actor_role, event.target) == ("headteacher", "headteacher", f"incident:{number}")
    assert json.loads(event.detail)["ban"] == in_force.ban_id
    after = head.get(f"/incidents/{number}").get_data(as_text=True)
    assert "is on supervised-only access until" in after and "Confirm and ban" not in after
    # Deciding twice (another tab) is refused, and changes nothing.
    assert post(head, f"/incidents/{number}/dismiss", reason="oops").status_code == 409
    assert get(app, Incident, number).status == "confirmed"


def test_until_lifted(app) -> None:
    number = incident(app)
    assert post(signed_in(app, "headteacher"), f"/incidents/{number}/confirm", until_lifted="1").status_code == 302
    with store(app) as s:
        (in_force,) = bans_in_force(s, datetime.now(UTC))
    assert in_force.ends_at is None


@pytest.mark.parametrize("ends_on", ["", "tomorrow", "2020-01-01", "2999-01-01", "today"])
def test_a_bad_end_date_is_refused_with_a_message_and_changes_nothing(app, ends_on) -> None:
    number = incident(app)
    if ends_on == "today":
        ends_on = datetime.now(LONDON).date().isoformat()
    response = post(signed_in(app, "headteacher"), f"/incidents/{number}/confirm", ends_on=ends_on)
    assert response.status_code == 400
    assert "ban" in response.get_data(as_text=True)
    assert get(app, Incident, number).status == "open" and bans_counter(app) == 0
    assert audited(app, "incident_confirmed") == []


def test_a_dismissed_incident_goes_back_to_the_officer_to_tune(app) -> None:
    number = incident(app)
    head = signed_in(app, "headteacher")
    refused = post(head, f"/incidents/{number}/dismiss", reason="  ")
    assert refused.status_code == 400 and "Say why" in refused.get_data(as_text=True)
    assert get(app, Incident, number).status == "open"
    assert post(head, f"/incidents/{number}/dismiss", reason="The school's own DoH test").status_code == 302
    assert get(app, Incident, number).status == "dismissed" and bans_counter(app) == 0
    assert json.loads(audited(app, "incident_dismissed")[0].detail) == {"reason": "The school's own DoH test"}
    officer = signed_in(app, "officer")
    assert "1 dismissed as false positive: to tune" in officer.get("/incidents/").get_data(as_text=True)
    tune = officer.get("/incidents/?status=dismissed").get_data(as_text=True)
    assert f"Incident {number}" in tune and "The school&#39;s own DoH test" in tune


def test_forms_without_a_csrf_token_are_refused(app) -> None:
    number = incident(app)
    head = signed_in(app, "headteacher")
    response = head.post(f"/incidents/{number}/confirm", data={"until_lifted": "1"})
    assert response.status_code == 400 and get(app, Incident, number).status == "open"
    assert head.post(f"/bans/{ban(app)}/lift", data={"note": "x"}).status_code == 400


def test_hostile_evidence_is_shown_escaped(app) -> None:
    number = incident(app, user_agent=HOSTILE, host=f"{HOSTILE}.example", first_bytes=HOSTILE,
                      display_name=HOSTILE, evidence=json.dumps({HOSTILE: HOSTILE}))  # fmt: skip
    officer = signed_in(app, "officer")
    for html in (officer.get("/incidents/").get_data(as_text=True),
                 officer.get(f"/incidents/{number}").get_data(as_text=True)):  # fmt: skip
        assert HOSTILE not in html and "&lt;script&gt;" in html


def test_a_failed_notice_is_visible_on_the_list(app) -> None:
    incident(app, notice_state="failed", notice_attempts=4, notice_sent_at=None)
    html = signed_in(app, "headteacher").get("/incidents/").get_data(as_text=True)
    assert "1 notice could not be sent" in html and "could not be sent (retried) (4 tries)" in html


def test_the_headteacher_sets_a_bans_end_and_lifts_it_with_a_note(app) -> None:
    number = ban(app)
    head = signed_in(app, "headteacher")
    page = head.get("/bans/").get_data(as_text=True)
    assert "Amy (amy)" in page and "until lifted" in page and "Lift the ban" in page
    ends_on = (datetime.now(LONDON).date() + timedelta(days=3)).isoformat()
    assert post(head, f"/bans/{number}/end", ends_on=ends_on).status_code == 302
    assert get(app, Ban, number).ends_at == datetime.combine(date.fromisoformat(ends_on), datetime.min.time(), LONDON)
    assert json.loads(audited(app, "ban_end_set")[0].detail)["username"] == "amy"
    assert post(head, f"/bans/{number}/end", ends_on="2000-01-01").status_code == 400
    assert post(head, f"/bans/{number}/lift", note="").status_code == 400
    assert get(app, Ban, number).lifted_at is None
    assert post(head, f"/bans/{number}/lift", note="Apologised; parents met").status_code == 302
    lifted = get(app, Ban, number)
    assert (lifted.lifted_by, lifted.lift_note) == ("headteacher", "Apologised; parents met")
    assert audited(app, "ban_lifted")[0].actor == "headteacher" and bans_counter(app) == 3
    assert post(head, f"/bans/{number}/lift", note="again").status_code == 409
    assert "Nobody is banned." in head.get("/bans/").get_data(as_text=True)


def test_the_officer_sees_bans_but_does_not_change_them(app) -> None:
    number = ban(app)
    officer = signed_in(app, "officer")
    assert "Lift the ban" not in officer.get("/bans/").get_data(as_text=True)
    assert post(officer, f"/bans/{number}/lift", note="x").status_code == 403
    assert post(officer, f"/bans/{number}/end", until_lifted="1").status_code == 403


def running(app) -> list[SupervisedSession]:  # type: ignore[no-untyped-def]
    with store(app) as s:
        return list(s.scalars(select(SupervisedSession).where(SupervisedSession.ended_at.is_(None))))


def test_a_teacher_supervises_a_banned_pupil_of_their_class_from_my_classes(app) -> None:
    ban(app, "amy")
    ban(app, "ben")
    teacher = signed_in(app, "teacher")
    page = teacher.get("/my-classes/").get_data(as_text=True)
    assert "supervised-only access" in page and 'data-pupil="amy"' in page and "Supervise for this lesson" in page
    response = post(teacher, "/bans/supervise", username="amy", how="minutes", minutes="40", back="my_classes")
    assert response.status_code == 302 and response.headers["Location"].endswith("/my-classes/")
    (session,) = running(app)
    assert (session.username, session.teacher) == ("amy", "teacher")
    assert timedelta(minutes=39) < session.ends_at - session.started_at <= timedelta(minutes=40)
    with store(app) as s:
        supervised = {b.username: b.supervised_until for b in bans_in_force(s, datetime.now(UTC))}
    assert supervised["amy"] == session.ends_at and supervised["ben"] is None
    assert audited(app, "supervision_started")[0].target == "person:amy"
    assert "End the supervised session now" in teacher.get("/my-classes/").get_data(as_text=True)
    # Ben is in 6A, which this teacher does not teach.
    assert post(teacher, "/bans/supervise", username="ben", how="minutes", minutes="40").status_code == 403
    assert len(running(app)) == 1
    # Ending it early: the ban applies again at once.
    assert post(teacher, f"/bans/supervised/{session.id}/end", back="my_classes").status_code == 302
    assert running(app) == [] and audited(app, "supervision_ended")[0].actor == "teacher"


def test_one_lesson_runs_to_the_end_of_the_timetables_period(app) -> None:
    ban(app, "amy")
    teacher = signed_in(app, "teacher")
    assert post(teacher, "/bans/supervise", username="amy", how="lesson").status_code == 302
    (session,) = running(app)
    # The test timetable's one lesson runs all day: it ends at the school's midnight.
    tomorrow = datetime.now(LONDON).date() + timedelta(days=1)
    assert session.ends_at == datetime.combine(tomorrow, datetime.min.time(), LONDON)


@pytest.mark.parametrize("form", [
    {"how": "minutes", "minutes": "0"}, {"how": "minutes", "minutes": "9999"}, {"how": "minutes", "minutes": "ten"},
    {"how": "sometime"}, {"how": "minutes", "minutes": "30", "note": "x" * 3000},
])  # fmt: skip
def test_bad_supervision_forms_are_refused_and_change_nothing(app, form) -> None:
    ban(app, "amy")
    response = post(signed_in(app, "teacher"), "/bans/supervise", username="amy", **form)
    assert response.status_code == 400 and running(app) == [] and audited(app, "supervision_started") == []


def test_no_supervision_for_a_pupil_who_is_not_banned(app) -> None:
    response = post(signed_in(app, "teacher"), "/bans/supervise", username="amy", how="minutes", minutes="30")
    assert response.status_code == 409 and "not banned" in response.get_data(as_text=True)
    assert running(app) == []


def test_the_officer_supervises_anyone_from_the_bans_page(app) -> None:
    ban(app, "ben")
    officer = signed_in(app, "officer")
    assert "Supervise for the set time" in officer.get("/bans/").get_data(as_text=True)
    assert post(officer, "/bans/supervise", username="ben", how="minutes", minutes="30").status_code == 302
    (session,) = running(app)
    # A teacher who does not teach Ben cannot end it either.
    assert post(signed_in(app, "teacher"), f"/bans/supervised/{session.id}/end").status_code == 403
    assert "(running)" in officer.get("/bans/").get_data(as_text=True)


def test_dpo_and_it_cannot_supervise(app) -> None:
    ban(app, "amy")
    for role in ("dpo", "it"):
        assert post(signed_in(app, role), "/bans/supervise", username="amy", how="minutes",
                    minutes="30").status_code == 403  # fmt: skip
    assert running(app) == []
