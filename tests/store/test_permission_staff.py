"""Staff never get lesson time on a personal-account permission, whatever the school names their filter group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from gateway.identity.directory import import_people
from gateway.identity.people import Person, StaffRole
from gateway.policy.compiled import load_compiled
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.permissions import grant_permission
from tests.support.policies import MINIMAL

RULES = """\
lists:
  social: {domains: [facebook.com]}
rules:
  - {id: no-social, lists: [social], action: block, reason: Social media is not allowed}
"""


@pytest.mark.parametrize(("person", "excluded"), [
    (Person("mr.t", "Tom Teacher", "teachers", roles=frozenset({StaffRole.TEACHER})), True),
    (Person("mrs.o", "Office Manager", "admin"), True),  # no role, no year group: staff
    (Person("amy", "Amy Jones", "pupil", year_group=5, school_class="5B"), False),
])  # fmt: skip
def test_lesson_time_is_always_excluded_for_staff(tmp_path: Path, person: Person, excluded: bool) -> None:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(url)
    policy = tmp_path / "policy.yaml"
    policy.write_text(MINIMAL + RULES)
    engine = make_engine(url)
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        import_people(s, [person])
        row = grant_permission(s, load_compiled(policy), username=person.username, lists=["social"], domains=[],
                               expires=now + timedelta(days=7), exclude_lessons=False, reason="School page",
                               by="head", now=now)  # fmt: skip
        assert row.exclude_lessons is excluded
    engine.dispose()
