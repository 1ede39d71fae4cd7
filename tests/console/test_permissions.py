"""Two-key permissions through the console's test client: the headteacher's key alone lets nothing through, the
officer's confirmation makes the grant live (outside lesson time for staff, whatever the form said), either key
holder revokes it, and each key holder can turn only their own key. Decisions are checked with the decision engine
against the grants in the store, as every proxy's follower reads them; and through a real mitmdump on SQLite and
PostgreSQL."""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.decisions.engine import decide_target
from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.identity.sessions import start_session
from gateway.identity.types import Identity, IdentitySource
from gateway.policy.compiled import load_compiled
from gateway.policy.store_grants import compile_store_grants
from gateway.store.accounts import create_user
from gateway.store.engine import make_engine, session_factory
from gateway.store.grants import grants_in_force
from gateway.store.migrate import upgrade
from gateway.store.models.audit import AuditEvent
from gateway.web.app import ConsoleConfig, create_app
from tests.console.seed import PASSWORD, ROLES, seed
from tests.store.databases import pg_schema_url  # noqa: F401
from tests.support.clients import curl
from tests.support.policies import MINIMAL

LONDON = ZoneInfo("Europe/London")
# Term time whenever the test runs, so the next weekday has lessons.
AUTUMN_2026 = "terms: [{name: Autumn, start: 2026-09-03, end: 2026-12-18}]"
EVERY_YEAR = "terms: [{name: Always, start: 2000-01-01, end: 2099-12-31}]"
RULES = """\
lists:
  social: {domains: [facebook.com, instagram.com]}
  illegal: {domains: [bad.example], unliftable: true}
rules:
  - {id: no-social, lists: [social], action: block, reason: Social media is not allowed}
  - {id: no-illegal, lists: [illegal], action: block, reason: Never}
"""
PEOPLE = {"mrs_smith": Identity(group="staff", username="mrs_smith"),
          "amy": Identity(group="pupil", username="amy", school_class="5B", year_group=5)}  # fmt: skip


def next_weekday(hour: int, minute: int = 0) -> datetime:
    """An instant on the next weekday at a local time."""
    day = date.today() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LONDON).astimezone(UTC)


def console_on(url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The console on a migrated store holding the staff accounts, with Mrs Smith and Amy in the roster."""
    with session_factory(make_engine(url)).begin() as s:
        import_people(s, [Person("mrs_smith", "Jane Smith", "staff"),
                          Person("amy", "Amy Jones", "pupil", year_group=5, school_class="5B")])  # fmt: skip
    policy = tmp_path / "policy.yaml"
    policy.write_text(MINIMAL.replace(AUTUMN_2026, EVERY_YEAR) + RULES)
    app = create_app(ConsoleConfig(db_url=url, secret_key_file=str(tmp_path / "secret"), policy_path=str(policy)))
    app.config.update(DB_URL=url, POLICY=str(policy))
    return app


@pytest.fixture
def app(tmp_path: Path):  # type: ignore[no-untyped-def]
    return console_on(seed(tmp_path), tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store_app(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The console on SQLite (seeded), then on a PostgreSQL schema of its own (its rows clash with no test's)."""
    if request.param == "sqlite":
        return request.getfixturevalue("app")
    _, url = request.getfixturevalue("pg_schema_url")
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        for role in ROLES:
            create_user(s, role, f"{role.title()} Staff", role, PASSWORD)
    engine.dispose()
    return console_on(url, tmp_path)


def csrf(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def staff(app, role: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = client.get("/sign-in").get_data(as_text=True)
    client.post("/sign-in", data={"username": role, "password": PASSWORD, "csrf_token": csrf(page)})
    return client


def post(client, path: str, **form: str):  # type: ignore[no-untyped-def]
    token = csrf(client.get("/permissions/").get_data(as_text=True))
    return client.post(path, data={"csrf_token": token} | form)


def grant(head, username: str = "mrs_smith", *, exclude_lessons: bool = False, **form: str):  # type: ignore[no-untyped-def]
    until = (date.today() + timedelta(days=14)).isoformat()
    data = {"username": username, "domains": "facebook.com", "lists": "", "until": until,
            "reason": "Runs the school's page"} | ({"exclude_lessons": "yes"} if exclude_lessons else {}) | form
    return post(head, "/permissions/", **data)


def decision(app, username: str, when: datetime, url: str = "http://www.facebook.com/"):  # type: ignore[no-untyped-def]
    compiled = load_compiled(app.config["POLICY"])
    with session_factory(make_engine(app.config["DB_URL"]))() as s:
        grants, _ = grants_in_force(s, datetime.now(UTC))
    exceptions, problems = compile_store_grants(compiled, [g.grant for g in grants])
    assert not problems
    return decide_target(compiled, PEOPLE[username], url, when, exceptions)


def audit_actions(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with session_factory(make_engine(app.config["DB_URL"]))() as s:
        return [(e.actor, e.action) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))
                if e.action.startswith("permission")]


LESSON, LUNCH = next_weekday(10), next_weekday(12, 30)


def test_one_key_lets_nothing_through_both_do_and_staff_never_in_lesson_time(app) -> None:
    head, officer = staff(app, "headteacher"), staff(app, "officer")
    # The form's "not in lesson time" is left unticked: for staff it is excluded all the same.
    assert grant(head, exclude_lessons=False).status_code == 302
    page = head.get("/permissions/").get_data(as_text=True)
    assert "waiting for the officer" in page and "excluded" in page
    assert decision(app, "mrs_smith", LUNCH).blocked
    # The headteacher cannot turn the second key.
    assert post(head, "/permissions/1/confirm", note="done").status_code == 403
    assert decision(app, "mrs_smith", LUNCH).blocked

    confirmed = post(officer, "/permissions/1/confirm", note="Guest VLAN with client isolation")
    assert confirmed.status_code == 302
    assert "live as grant-1" in officer.get("/permissions/").get_data(as_text=True)
    assert not decision(app, "mrs_smith", LUNCH).blocked
    assert decision(app, "mrs_smith", LESSON).blocked
    # Only the person named, and only the sites named.
    assert decision(app, "amy", LUNCH).blocked
    assert decision(app, "mrs_smith", LUNCH, "http://www.instagram.com/").blocked
    # A second confirmation changes nothing.
    assert post(officer, "/permissions/1/confirm", note="again").status_code == 400
    assert audit_actions(app) == [("headteacher", "permission_granted"), ("officer", "permission_confirmed")]


def test_a_pupil_may_be_granted_lesson_time_and_the_officer_cannot_grant(app) -> None:
    head, officer = staff(app, "headteacher"), staff(app, "officer")
    assert grant(officer, "amy").status_code == 403
    assert grant(head, "amy", exclude_lessons=False).status_code == 302
    assert decision(app, "amy", LESSON).blocked
    post(officer, "/permissions/1/confirm", note="Filtered SSID")
    assert not decision(app, "amy", LESSON).blocked
    assert not decision(app, "amy", LUNCH).blocked


@pytest.mark.parametrize("revoker", ["headteacher", "officer"])
def test_either_key_holder_revokes(app, revoker: str) -> None:
    head, officer = staff(app, "headteacher"), staff(app, "officer")
    grant(head, "amy", exclude_lessons=True)
    post(officer, "/permissions/1/confirm", note="Filtered SSID")
    assert not decision(app, "amy", LUNCH).blocked
    assert post(staff(app, revoker), "/permissions/1/revoke").status_code == 302
    assert decision(app, "amy", LUNCH).blocked
    assert f"revoked by {revoker}" in head.get("/permissions/").get_data(as_text=True)
    # A revoked permission cannot be confirmed back to life.
    assert post(officer, "/permissions/1/confirm", note="again").status_code == 400
    assert decision(app, "amy", LUNCH).blocked
    assert audit_actions(app)[-1] == (revoker, "permission_revoked")


def test_revoking_before_confirmation_means_it_never_goes_live(app) -> None:
    head, officer = staff(app, "headteacher"), staff(app, "officer")
    grant(head, "amy")
    post(officer, "/permissions/1/revoke")
    assert post(officer, "/permissions/1/confirm", note="in place").status_code == 400
    assert decision(app, "amy", LUNCH).blocked


@pytest.mark.parametrize(("form", "says"), [
    ({"domains": "bad.example"}, "no exception may lift"),
    ({"domains": "", "lists": "illegal"}, "no exception may lift"),
    ({"domains": "", "lists": "nosuchlist"}, "does not have"),
    ({"domains": ""}, "must name lists or domains"),
    ({"username": "nobody"}, "not in the roster"),
    ({"until": "2001-01-01"}, "end in the future"),
    ({"until": "next week"}, "YYYY-MM-DD"),
    ({"reason": "  "}, "reason"),
])  # fmt: skip
def test_what_may_not_be_granted_is_refused_with_a_reason(app, form: dict[str, str], says: str) -> None:
    head = staff(app, "headteacher")
    refused = grant(head, **form)
    assert refused.status_code == 400 and says in refused.get_data(as_text=True)
    assert "No permissions have been granted" in head.get("/permissions/").get_data(as_text=True)


def test_other_roles_see_nothing(app) -> None:
    for role in ("teacher", "it", "dpo"):
        client = staff(app, role)
        assert client.get("/permissions/").status_code == 403
        assert "/permissions/" not in client.get("/help").get_data(as_text=True)


# Outside lesson time all day, every day: the proxy's own clock decides, unpinned.
PROXY_POLICY = """\
school: {name: Test School, contact: the e-safety officer}
groups: {pupil: {}, staff: {}, guest: {}}
default_group: guest
networks:
  - {name: staff-wifi, subnets: [127.0.0.1/32], group: guest, identity: [portal, subnet]}
timetable:
  weekly:
    monday: &day [{start: "00:00", end: "24:00", kind: lunch}]
    tuesday: *day
    wednesday: *day
    thursday: *day
    friday: *day
  terms: [{name: Always, start: 2000-01-01, end: 2099-12-31}]
""" + RULES
LIVE_WITHIN = 5.0


def eventually(proxy, url: str, wanted: int) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while (got := curl(url, proxy=proxy.proxy_url).status) != wanted:
        assert time.monotonic() - started < LIVE_WITHIN, f"{url}: still {got} after {LIVE_WITHIN}s"
        time.sleep(0.1)


@pytest.mark.e2e
def test_through_a_real_proxy_one_key_blocks_both_let_through_revoking_blocks(any_store_app, mitmdump_proxy,
                                                                              origin_http, tmp_path: Path) -> None:  # fmt: skip
    app = any_store_app
    with session_factory(make_engine(app.config["DB_URL"])).begin() as s:
        start_session(s, client_ip="127.0.0.1", source=IdentitySource.PORTAL, username="mrs_smith",
                      now=datetime.now(UTC))
    policy = tmp_path / "proxy-policy.yaml"
    policy.write_text(PROXY_POLICY)
    proxy = mitmdump_proxy(["addons/gateway.py"], {
        "gateway_policy": str(policy), "gateway_db": app.config["DB_URL"], "gateway_spool": str(tmp_path / "spool"),
        "gateway_identity_interval_ms": 200, "gateway_grants_interval_ms": 200,
    }, origin=origin_http, ready_line="identity sources running")  # fmt: skip
    url = "http://www.facebook.com/"
    head, officer = staff(app, "headteacher"), staff(app, "officer")
    assert curl(url, proxy=proxy.proxy_url).status == 403

    grant(head, exclude_lessons=True)
    # The headteacher's key alone: still blocked once the proxy has had time to see any change.
    time.sleep(LIVE_WITHIN / 2)
    assert curl(url, proxy=proxy.proxy_url).status == 403

    post(officer, "/permissions/1/confirm", note="Staff SSID, client isolation on")
    eventually(proxy, url, 200)
    assert curl("http://www.instagram.com/", proxy=proxy.proxy_url).status == 403

    post(head, "/permissions/1/revoke")
    eventually(proxy, url, 403)
