"""Curriculum-activity windows through a real mitmdump, on SQLite and PostgreSQL, over HTTP and HTTPS: a teacher asks in the console for
a lesson for their class 5B, the headteacher approves, and within 5 s 5B's pupil reaches the site while 5C's pupil
next door is still blocked; closing the window early blocks 5B again within 5 s. A pre-authorised teacher's window
for 5C opens with no approval and the headteacher finds it in the list of windows opened without approval."""

from __future__ import annotations

import re
import time
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
from gateway.web.app import ConsoleConfig, create_app
from tests.store.databases import db_url, pg_schema_url  # noqa: F401
from tests.support.clients import curl
from tests.support.console import PASSWORD, post, signed_in
from tests.support.policies import always_lesson_policy

pytestmark = pytest.mark.e2e

LIVE_WITHIN = 5.0
GAMES = "www.games.example/"
AMY_5B, CARL_5C = "127.0.0.1", "127.0.0.2"
POLICY = always_lesson_policy(
    """\
school: {name: Test Primary School, contact: the e-safety officer}
groups: {pupil: {}, staff: {}, guest: {}}
default_group: guest
networks:
  - {name: classroom-wifi, subnets: [127.0.0.0/24], group: guest, identity: [portal, subnet]}
""",
    """\
lists:
  games: {domains: [games.example]}
rules:
  - {id: no-games, lists: [games], action: block, reason: Games are not allowed in lessons}
curriculum: {preauthorised_teachers: [mr_ict]}
""",
)


def ask_for_today(client, school_class: str):  # type: ignore[no-untyped-def]
    """The form as the teacher fills it in: today's lesson (all day, in this timetable) for their class."""
    form = client.get("/windows/mine").get_data(as_text=True)
    day = re.search(r'name="day" value="([0-9-]+)"', form).group(1)
    assert '<option value="00:00-24:00"' in form
    return post(client, "/windows/mine", school_class=school_class, lists=["games"], when="lesson", day=day,
                period="00:00-24:00", purpose="Designing a maths game: pupils review published ones")  # fmt: skip


def games(proxy, source: str, scheme: str) -> int:  # type: ignore[no-untyped-def]
    """What a pupil's browser on `source` gets from the games site (https: trusting the gateway's CA)."""
    return curl(f"{scheme}://{GAMES}", proxy=proxy.proxy_url, source_address=source, ca=proxy.ca_cert_path).status


def eventually(proxy, source: str, wanted: int, scheme: str) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while (got := games(proxy, source, scheme)) != wanted:
        assert time.monotonic() - started < LIVE_WITHIN, f"{source}: still {got} after {LIVE_WITHIN}s"
        time.sleep(0.1)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_window_lets_one_class_through_and_not_the_next(db_url: str, mitmdump_proxy, scheme: str,
                                                          request: pytest.FixtureRequest, tmp_path: Path) -> None:  # fmt: skip  # noqa: F811
    engine = make_engine(db_url)
    with Session(engine) as s, s.begin():
        import_people(s, [Person("teacher", "Tess Teacher", "staff", teaches=frozenset({"5B"})),
                          Person("mr_ict", "Ian Ict", "staff", teaches=frozenset({"5C"})),
                          Person("amy", "Amy Jones", "pupil", year_group=5, school_class="5B"),
                          Person("carl", "Carl Smith", "pupil", year_group=5, school_class="5C")])  # fmt: skip
        for address, pupil in ((AMY_5B, "amy"), (CARL_5C, "carl")):
            start_session(s, client_ip=address, source=IdentitySource.PORTAL, username=pupil, now=datetime.now(UTC))
        for username, role in (("teacher", "teacher"), ("mr_ict", "teacher"), ("head", "headteacher")):
            create_user(s, username, username.title(), role, PASSWORD)
    engine.dispose()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    app = create_app(ConsoleConfig(db_url=db_url, secret_key_file=str(tmp_path / "secret"), policy_path=str(policy)))
    proxy = mitmdump_proxy(["addons/gateway.py"], {
        "gateway_policy": str(policy), "gateway_db": db_url, "gateway_spool": str(tmp_path / "spool"),
        "gateway_identity_interval_ms": 200, "gateway_grants_interval_ms": 200,
    }, origin=request.getfixturevalue(f"origin_{scheme}"), ready_line="identity sources running")  # fmt: skip
    teacher, ict, head = signed_in(app, "teacher"), signed_in(app, "mr_ict"), signed_in(app, "head")
    eventually(proxy, AMY_5B, 403, scheme)
    assert games(proxy, CARL_5C, scheme) == 403

    assert ask_for_today(teacher, "5B").status_code == 302
    # Asked, not approved: still blocked once the proxy has had time to see any change.
    time.sleep(LIVE_WITHIN / 2)
    assert games(proxy, AMY_5B, scheme) == 403

    assert post(head, "/windows/1/approve", note="Good use of lesson time").status_code == 302
    eventually(proxy, AMY_5B, 200, scheme)
    assert games(proxy, CARL_5C, scheme) == 403

    assert post(head, "/windows/1/close").status_code == 302
    eventually(proxy, AMY_5B, 403, scheme)

    # A pre-authorised teacher: open at once for 5C, and shown to the headteacher afterwards.
    assert ask_for_today(ict, "5C").status_code == 302
    eventually(proxy, CARL_5C, 200, scheme)
    assert games(proxy, AMY_5B, scheme) == 403
    unseen = head.get("/windows/").get_data(as_text=True).split("Opened without approval")[1].split("All windows")[0]
    assert "Window 2" in unseen and "mr_ict" in unseen
