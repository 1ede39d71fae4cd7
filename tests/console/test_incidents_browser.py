"""In real Chromium against the console served by waitress: the headteacher opens a circumvention incident from the
list, reads its evidence and confirms it (the pupil is banned), and the pupil's class teacher starts a supervised
session for them from My classes, then ends it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.identity.directory import import_people
from gateway.identity.people import Person, StaffRole
from gateway.store.accounts import create_user
from gateway.store.bans import bans_in_force
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.models.circumvention import Incident, SupervisedSession
from gateway.web.app import ConsoleConfig, create_app
from tests.support.browser import chromium, served, staff_page
from tests.support.console import PASSWORD
from tests.support.policies import always_lesson_policy

pytestmark = pytest.mark.browser

POLICY = always_lesson_policy("""\
school: {name: Test Primary School, contact: the e-safety officer}
groups: {pupils: {}, guest: {}}
default_group: guest
networks:
  - {name: wifi, subnets: [10.1.0.0/16], group: pupils}
circumvention: {ban_days: 14}
""")  # fmt: skip


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[str, str]]:
    db = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(db)
    engine = make_engine(db)
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        import_people(s, [Person("amy", "Amy Pupil", "pupils", year_group=5, school_class="5B"),
                          Person("mr_t", "Mr Teacher", "staff", roles=frozenset({StaffRole.TEACHER}),
                                 teaches=frozenset({"5B"}))])  # fmt: skip
        create_user(s, "head", "Hilary Head", "headteacher", PASSWORD)
        create_user(s, "mr_t", "Mr Teacher", "teacher", PASSWORD)
        s.add(Incident(created_at=now - timedelta(minutes=3), last_seen_at=now, hits=4, username="amy",
                       display_name="Amy Pupil", group_name="pupils", school_class="5B", year_group=5,
                       device="ipad-07", client_ip="10.1.2.3", person_key="user:amy", technique="ip_literal",
                       detector="ip-literal-connect", confidence="high", host="93.184.216.34",
                       user_agent="<script>document.title='pwned'</script>", status="open", notice_state="sent",
                       notice_attempts=1, notice_sent_at=now))  # fmt: skip
    (tmp_path / "policy.yaml").write_text(POLICY)
    app = create_app(ConsoleConfig(db_url=db, secret_key_file=str(tmp_path / "secret"),
                                   policy_path=str(tmp_path / "policy.yaml")))  # fmt: skip
    with served(app) as url:
        yield db, url
    engine.dispose()


def test_the_head_confirms_and_the_class_teacher_supervises(console) -> None:
    db, url = console
    engine = make_engine(db)
    with chromium() as browser:
        head = staff_page(browser, url, "head")
        head.get_by_role("link", name="Circumvention incidents").click()
        head.get_by_role("link", name=re.compile(r"Incident \d+")).click()
        assert head.locator("#incident").inner_text().count("93.184.216.34") == 1
        # The user agent is shown as text, never run.
        assert "<script>" in head.locator("#user-agent").inner_text() and head.title() != "pwned"
        head.get_by_label("The ban ends at the start of").fill(
            (datetime.now(UTC) + timedelta(days=7)).date().isoformat())  # fmt: skip
        head.get_by_role("button", name="Confirm and ban").click()
        assert "is on supervised-only access until" in head.locator("[role=status]").inner_text()
        with Session(engine) as s:
            (ban,) = bans_in_force(s, datetime.now(UTC))
        assert ban.username == "amy" and ban.supervised_until is None

        teacher = staff_page(browser, url, "mr_t")
        teacher.get_by_role("link", name="My classes").click()
        row = teacher.locator('tr[data-pupil="amy"]')
        assert "On supervised-only access" in row.inner_text()
        row.get_by_label("Minutes (for a set time)").fill("45")
        row.get_by_role("button", name="Supervise for the set time").click()
        assert "Supervised session for amy until" in teacher.locator("[role=status]").inner_text()
        with Session(engine) as s:
            (supervised,) = s.scalars(select(SupervisedSession)).all()
            (ban,) = bans_in_force(s, datetime.now(UTC))
        assert supervised.teacher == "mr_t" and ban.supervised_until == supervised.ends_at
        teacher.locator('tr[data-pupil="amy"]').get_by_role("button", name="End the supervised session now").click()
        assert "the ban applies again" in teacher.locator("[role=status]").inner_text()
        with Session(engine) as s:
            assert bans_in_force(s, datetime.now(UTC))[0].supervised_until is None
    engine.dispose()
