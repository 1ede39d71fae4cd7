"""Two-key permissions in real Chromium through a real mitmdump, on SQLite and PostgreSQL: the headteacher grants a
member of staff a social network in the console (leaving "not in lesson time" unticked), and her Chromium through the proxy
is still blocked; the officer confirms the security controls and within 5 seconds she reaches it at lunch, but not
in lesson time (the gateway's clock file moves between the two); either key holder revokes it and she is blocked
again within 5 seconds.

Chromium reaches the console (waitress on 127.0.0.1) directly; the staff member's pages go through the proxy, which
knows 127.0.0.1 as Mrs Smith from a portal session in the store.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.identity.sessions import start_session
from gateway.identity.types import IdentitySource
from gateway.store.accounts import create_user
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.web.app import ConsoleConfig, create_app
from tests.store.databases import pg_schema_url  # noqa: F401
from tests.support.browser import chromium, served, staff_page
from tests.support.console import PASSWORD
from tests.support.policies import school_days_policy

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

LIVE_WITHIN = 5.0
LONDON = ZoneInfo("Europe/London")
# Not names on Chromium's HSTS preload list (facebook.com is), which Chromium would only ever ask for over HTTPS.
SOCIAL = "http://www.friendbook.example/"

POLICY = school_days_policy("""\
school: {name: Test School, contact: the e-safety officer}
groups: {pupil: {}, staff: {}, guest: {}}
default_group: guest
networks:
  - {name: staff-wifi, subnets: [127.0.0.1/32], group: guest, identity: [portal, subnet]}
""", """\
lists:
  social: {domains: [friendbook.example, photogram.example]}
rules:
  - {id: no-social, lists: [social], action: block, reason: Social media is not allowed}
""")


def next_weekday(hour: int, minute: int = 0) -> str:
    """The next weekday at a school-local time, as the clock file takes it (naive = school-local)."""
    day = datetime.now(LONDON).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, minute).isoformat(timespec="minutes")


LESSON, LUNCH = next_weekday(10), next_weekday(12, 30)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = (f"sqlite:///{tmp_path / 'gateway.db'}" if request.param == "sqlite"
           else request.getfixturevalue("pg_schema_url")[1])  # fmt: skip
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        import_people(s, [Person("mrs_smith", "Jane Smith", "staff")])
        start_session(s, client_ip="127.0.0.1", source=IdentitySource.PORTAL, username="mrs_smith",
                      now=datetime.now(UTC))
        create_user(s, "officer", "Olive Officer", "officer", PASSWORD)
        create_user(s, "head", "Harriet Head", "headteacher", PASSWORD)
        create_user(s, "teacher", "Tom Teacher", "teacher", PASSWORD)
    engine.dispose()
    return url


@pytest.fixture
def console(db_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    app = create_app(ConsoleConfig(db_url=db_url, secret_key_file=str(tmp_path / "secret"), policy_path=str(policy)))
    with served(app) as url:
        yield url, policy


@pytest.fixture
def clock(tmp_path: Path) -> Path:
    path = tmp_path / "gateway-clock"
    path.write_text(LUNCH)
    return path


@pytest.fixture
def gateway(mitmdump_proxy, origin_http, console, db_url: str, clock: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    _, policy = console
    return mitmdump_proxy(["addons/gateway.py"], {
        "gateway_policy": str(policy), "gateway_db": db_url, "gateway_spool": str(tmp_path / "spool"),
        "gateway_identity_interval_ms": 200, "gateway_grants_interval_ms": 200, "gateway_clock_file": str(clock),
    }, origin=origin_http, ready_line="identity sources running")  # fmt: skip


@pytest.fixture
def browser(gateway):  # type: ignore[no-untyped-def]
    with chromium(gateway.proxy_url) as browser:
        yield browser


def status_within(page, url: str, wanted: int, within: float = LIVE_WITHIN) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while (status := page.goto(url).status) != wanted:
        assert time.monotonic() - started < within, f"{url}: still {status} after {within}s"
        time.sleep(0.2)


@pytest.mark.parametrize("revoker", ["head", "officer"])
def test_headteacher_grants_officer_confirms_staff_get_through_at_lunch_not_in_lessons_until_revoked(
    browser, console, clock: Path, revoker: str, tmp_path: Path
) -> None:
    console_url, _ = console
    staff = browser.new_context().new_page()
    staff.set_default_timeout(10_000)
    assert staff.goto(SOCIAL).status == 403
    assert "Social media is not allowed" in staff.inner_text("body")

    # The first key. "Not in lesson time" is unticked: for staff it is excluded all the same.
    head = staff_page(browser, console_url, "head")
    head.get_by_role("link", name="Permissions").click()
    head.get_by_label("Person (roster username)").fill("mrs_smith")
    head.get_by_label("Sites (domains, separated by spaces or commas)").fill("friendbook.example")
    head.get_by_label("Last day").fill((date.today() + timedelta(days=14)).isoformat())
    head.get_by_label("Not in lesson time (always, for staff)").uncheck()
    head.get_by_label("Reason").fill("Runs the school's page on Friendbook")
    head.get_by_role("button", name="Grant (first key)").click()
    page = head.inner_text("main")
    assert "waiting for the officer" in page and "excluded" in page
    # The headteacher has no second key to turn.
    assert head.get_by_role("button", name="Confirm permission 1 (second key)").count() == 0
    time.sleep(LIVE_WITHIN / 2)  # long enough for the proxy to have seen any change
    assert staff.goto(SOCIAL).status == 403

    # The second key: live within 5 s, at lunch.
    officer = staff_page(browser, console_url, "officer")
    officer.get_by_role("link", name="Permissions").click()
    officer.get_by_label("Security controls in place").fill("Staff SSID, client isolation on")
    officer.get_by_role("button", name="Confirm permission 1 (second key)").click()
    assert "live as grant-" in officer.inner_text("main")
    status_within(staff, SOCIAL, 200)
    assert "origin ok: www.friendbook.example/" in staff.inner_text("body")
    staff.screenshot(path=str(tmp_path / "lunch.png"), full_page=True)
    # Only the sites named.
    assert staff.goto("http://www.photogram.example/").status == 403

    # Lesson time: blocked, whatever the headteacher ticked; lunch again: through.
    clock.write_text(LESSON)
    status_within(staff, SOCIAL, 403, 2.0)
    assert "Social media is not allowed" in staff.inner_text("body") and "lesson time" in staff.inner_text("body")
    clock.write_text(LUNCH)
    status_within(staff, SOCIAL, 200, 2.0)

    # Either key holder revokes: blocked again within 5 s, with no restart.
    holder = head if revoker == "head" else officer
    holder.reload()
    holder.get_by_role("button", name="Revoke permission 1").click()
    assert f"revoked by {revoker}" in holder.inner_text("main")
    status_within(staff, SOCIAL, 403)


def test_a_teacher_can_neither_see_nor_forge_a_permission(browser, console) -> None:
    console_url, _ = console
    teacher = staff_page(browser, console_url, "teacher")
    assert teacher.get_by_role("link", name="Permissions").count() == 0
    assert teacher.goto(f"{console_url}/permissions/").status == 403
    # A hand-made form with the teacher's own valid CSRF token: refused, and nothing is let through.
    teacher.goto(console_url)
    token = teacher.locator("input[name=csrf_token]").first.get_attribute("value")
    form = {"csrf_token": token, "username": "mrs_smith", "domains": "friendbook.example", "reason": "please",
            "until": (date.today() + timedelta(days=14)).isoformat()}
    assert teacher.request.post(f"{console_url}/permissions/", form=form).status == 403
    assert teacher.request.post(f"{console_url}/permissions/1/confirm", form={"csrf_token": token, "note": "x"}
                                ).status in (403, 404)  # fmt: skip
    time.sleep(LIVE_WITHIN / 2)
    staff = browser.new_context().new_page()
    assert staff.goto(SOCIAL).status == 403
