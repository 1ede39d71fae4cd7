"""In real Chromium through a real mitmdump: a pupil blocked on a page follows the block page's "Report this page"
link, finds the address filled in, and sends a report that the e-safety officer sees in their queue; a teacher
signed in to the console records a contact attempt that lands in the headteacher's queue.

Chromium reaches the console (waitress on 127.0.0.1) directly, as school browsers reach the gateway itself, so the
console sees the pupil's own address, 127.0.0.1, which the store has signed in as Amy.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

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
from tests.support.browser import chromium, served, staff_page
from tests.support.console import PASSWORD
from tests.support.policies import always_lesson_policy

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

POLICY = always_lesson_policy(
    """\
school: {name: Test Primary School, contact: the e-safety officer}
groups: {pupil: {}, guest: {}}
default_group: guest
networks:
  - {name: classroom-wifi, subnets: [127.0.0.1/32], group: guest, identity: [portal, subnet]}
""",
    """\
lists:
  games: {domains: [games.example]}
rules:
  - {id: no-games, lists: [games], action: block, reason: Games are not allowed in lessons}
""",
)


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    db_url = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(db_url)
    engine = make_engine(db_url)
    with Session(engine) as s, s.begin():
        import_people(s, [Person("amy", "Amy Jones", "pupil", year_group=5, school_class="5B")])
        start_session(s, client_ip="127.0.0.1", source=IdentitySource.PORTAL, username="amy", now=datetime.now(UTC))
        for username, role in (("officer", "officer"), ("head", "headteacher"), ("teacher", "teacher")):
            create_user(s, username, username.title(), role, PASSWORD)
    engine.dispose()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    app = create_app(ConsoleConfig(db_url=db_url, secret_key_file=str(tmp_path / "secret"), policy_path=str(policy)))
    with served(app) as url:
        yield url, db_url, policy


@pytest.fixture
def browser(mitmdump_proxy, origin_http, console, tmp_path: Path):  # type: ignore[no-untyped-def]
    console_url, db_url, policy = console
    gateway = mitmdump_proxy(["addons/gateway.py"], {
        "gateway_policy": str(policy), "gateway_db": db_url, "gateway_spool": str(tmp_path / "spool"),
        "gateway_portal_url": console_url, "gateway_identity_interval_ms": 200,
    }, origin=origin_http, ready_line="identity sources running")  # fmt: skip
    with chromium(gateway.proxy_url) as browser:
        yield browser


def test_a_pupil_reports_a_page_from_the_block_page_and_the_officer_sees_it(browser, console) -> None:
    console_url, _, _ = console
    pupil = browser.new_context().new_page()
    pupil.set_default_timeout(10_000)
    blocked = pupil.goto("http://games.example/play?level=2")
    assert blocked is not None and blocked.status == 403
    pupil.get_by_role("link", name="Report this page").click()
    pupil.wait_for_url(f"{console_url}/report?*")
    assert pupil.get_by_label("Address of the page").input_value() == "http://games.example/play?level=2"
    assert "Reported by: Amy Jones" in pupil.content()
    assert pupil.get_by_role("heading", name="Report a contact attempt").count() == 0
    pupil.get_by_label("What was wrong?").select_option(label="It is blocked but should not be")
    pupil.get_by_label("Anything else the officer should know").fill("We use it in maths to practise times tables")
    pupil.get_by_role("button", name="Send report").click()
    assert pupil.get_by_role("heading", name="Thank you").is_visible()
    assert "games.example" in pupil.locator("main").inner_text()

    officer = staff_page(browser, console_url, "officer")
    officer.goto(f"{console_url}/reports/")
    queue = officer.locator("main").inner_text()
    assert "games.example" in queue and "Amy Jones" in queue


def test_a_teacher_records_a_contact_attempt_for_the_headteacher(browser, console) -> None:
    console_url, _, _ = console
    teacher = staff_page(browser, console_url, "teacher")
    teacher.get_by_role("link", name="Report a contact attempt").click()
    teacher.get_by_label("Who tried to contact you?").fill("Parent of a Year 5 pupil")
    teacher.get_by_label("A parent or carer").check()
    teacher.get_by_label("On which service or app?").fill("Instagram")
    teacher.get_by_label("When?").fill("2026-11-30T19:45")
    teacher.get_by_label("What happened?").fill("A follow request and a message about their child's marks")
    teacher.get_by_role("button", name="Send to the headteacher").click()
    assert teacher.get_by_role("heading", name="Recorded for the headteacher").is_visible()

    head = staff_page(browser, console_url, "head")
    head.goto(f"{console_url}/reports/head")
    queue = head.locator("main").inner_text()
    assert "Contact attempt" in queue and "A follow request and a message about their child's marks" in queue
    head.goto(f"{console_url}/reports/1")
    detail = head.locator("main").inner_text()
    assert "Parent of a Year 5 pupil (a parent or carer)" in detail and "Instagram" in detail
    assert "2026-11-30 19:45" in detail
