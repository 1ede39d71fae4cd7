"""The whole unblock workflow in real Chromium through a real mitmdump, on SQLite and PostgreSQL: a pupil is
blocked, follows the block page's "Ask for access" link, sends a request; the officer forwards it; the headteacher
approves it for this lesson; the pupil's next request passes the proxy within 5 seconds. Then either the
headteacher ends the grant early, or the gateway's clock (`gateway_clock_file`) is moved past the lesson's end;
either way the pupil is blocked again within 5 seconds, with no restart.

Chromium reaches the console (waitress on 127.0.0.1) directly, as school browsers are set up to reach the gateway
itself, so the console sees the pupil's own address, 127.0.0.1, which the store has signed in as Amy.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.identity.sessions import start_session
from gateway.identity.types import IdentitySource
from gateway.store.accounts import create_user
from gateway.store.engine import make_engine
from gateway.store.grants import grants_in_force
from gateway.store.migrate import upgrade
from gateway.web.app import ConsoleConfig, create_app
from tests.support.browser import chromium, staff_page
from tests.support.console import PASSWORD
from tests.support.policies import always_lesson_policy
from tests.support.waitress_thread import waitress_thread

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

LIVE_WITHIN = 5.0


def policy_text(request_url: str) -> str:
    return always_lesson_policy(
        f"""\
school: {{name: Test Primary School, contact: the e-safety officer, request_url: "{request_url}"}}
groups: {{pupil: {{}}, guest: {{}}}}
default_group: guest
networks:
  - {{name: classroom-wifi, subnets: [127.0.0.1/32], group: guest, identity: [portal, subnet]}}
""",
        """\
lists:
  games: {domains: [games.example]}
rules:
  - {id: no-games, lists: [games], action: block, reason: Games are not allowed in lessons}
""",
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    sqlite = f"sqlite:///{tmp_path / 'gateway.db'}"
    url = sqlite if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    upgrade(url)
    engine = make_engine(url)
    suffix = os.urandom(3).hex()  # the PostgreSQL database is shared by the session's tests
    with Session(engine) as s, s.begin():
        import_people(s, [Person(f"amy{suffix}", "Amy Jones", "pupil", year_group=5, school_class="5B")])
        start_session(s, client_ip="127.0.0.1", source=IdentitySource.PORTAL, username=f"amy{suffix}",
                      now=datetime.now(UTC))
        create_user(s, f"officer{suffix}", "Olive Officer", "officer", PASSWORD)
        create_user(s, f"head{suffix}", "Harriet Head", "headteacher", PASSWORD)
    engine.dispose()
    request.node.suffix = suffix
    return url


@pytest.fixture
def console(db_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    policy = tmp_path / "policy.yaml"
    app = create_app(ConsoleConfig(db_url=db_url, secret_key_file=str(tmp_path / "secret"), policy_path=str(policy)))
    with waitress_thread(app) as server:
        url = f"http://127.0.0.1:{server.effective_port}"
        policy.write_text(policy_text(f"{url}/request"))
        yield url, policy


@pytest.fixture
def gateway(mitmdump_proxy, origin_http, console, db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    _, policy = console
    return mitmdump_proxy(["addons/gateway.py"], {
        "gateway_policy": str(policy), "gateway_db": db_url, "gateway_spool": str(tmp_path / "spool"),
        "gateway_identity_interval_ms": 200, "gateway_grants_interval_ms": 200,
        "gateway_clock_file": str(tmp_path / "gateway-clock"),
    }, origin=origin_http, ready_line="identity sources running")


@pytest.fixture
def browser(gateway):  # type: ignore[no-untyped-def]
    with chromium(gateway.proxy_url) as browser:
        yield browser


def signed_in(browser, console_url: str, username: str):  # type: ignore[no-untyped-def]
    page = staff_page(browser, console_url, username)
    page.get_by_role("link", name="Unblock requests").click()
    return page


def status_within(page, url: str, wanted: int, since: float) -> None:  # type: ignore[no-untyped-def]
    while (status := page.goto(url).status) != wanted:
        assert time.monotonic() - since < LIVE_WITHIN, f"still {status} after {LIVE_WITHIN}s"
        time.sleep(0.2)


def approved_for_this_lesson(browser, console_url: str, suffix: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The pupil is blocked, asks, the officer forwards, the headteacher approves for this lesson and the pupil's
    next request passes within 5 s. Returns the pupil's and the headteacher's pages."""
    pupil = browser.new_context().new_page()
    pupil.set_default_timeout(10_000)
    response = pupil.goto("http://games.example/play")
    assert response is not None and response.status == 403
    assert "Games are not allowed in lessons" in pupil.inner_text("body")
    pupil.get_by_role("link", name="Ask for access").click()
    assert pupil.inner_text("h1") == "Ask for access"
    assert "Amy Jones" in pupil.inner_text("main") and "no-games" in pupil.inner_text("main")
    pupil.get_by_label("Why do you need it?").fill("We are reviewing game design in computing")
    pupil.get_by_label("This lesson").check()
    pupil.screenshot(path=str(tmp_path / "ask.png"), full_page=True)
    pupil.get_by_role("button", name="Send request").click()
    assert pupil.inner_text("h1") == "Request sent"

    officer = signed_in(browser, console_url, f"officer{suffix}")
    officer.get_by_role("link", name=re.compile(r"^Request \d+$")).click()
    assert "We are reviewing game design in computing" in officer.inner_text("main")
    officer.get_by_label("Note").fill("Sensible for the computing unit")
    officer.get_by_role("button", name="Forward to the headteacher").click()
    assert "forwarded" in officer.inner_text("main")

    head = signed_in(browser, console_url, f"head{suffix}")
    head.get_by_role("link", name=re.compile(r"^Request \d+$")).click()
    assert "recommends approve" in head.inner_text("main")
    assert head.get_by_label("Until").input_value() == "lesson"
    head.get_by_role("button", name="Approve").click()
    assert "approved" in head.inner_text("main")

    status_within(pupil, "http://games.example/play", 200, time.monotonic())
    assert "origin ok: games.example/play" in pupil.inner_text("body")
    return pupil, head


def test_blocked_pupil_asks_officer_forwards_headteacher_approves_then_ends_it_early(browser, console, request,
                                                                                    tmp_path: Path) -> None:
    console_url, _ = console
    suffix = request.node.suffix
    pupil, head = approved_for_this_lesson(browser, console_url, suffix, tmp_path)

    # The headteacher ends it early: the pupil is blocked again within 5 seconds, with no restart.
    head.get_by_role("link", name="Grants in force").click()
    assert f"head{suffix}" in head.inner_text("main") and "games.example" in head.inner_text("main")
    head.get_by_role("button", name=re.compile(r"^End grant-\d+ now$")).click()
    assert "No grants are in force" in head.inner_text("main")
    status_within(pupil, "http://games.example/play", 403, time.monotonic())
    # Coming back to ask again, the pupil sees the earlier request's outcome.
    pupil.get_by_role("link", name="Ask for access").click()
    assert "approved" in pupil.inner_text("main")


def test_an_approval_for_this_lesson_ends_when_the_gateways_clock_passes_the_lessons_end(browser, console, db_url: str,
                                                                                          request, tmp_path: Path) -> None:  # fmt: skip
    console_url, _ = console
    suffix = request.node.suffix
    pupil, head = approved_for_this_lesson(browser, console_url, suffix, tmp_path)
    head.get_by_role("link", name="Grants in force").click()
    assert "games.example" in head.inner_text("main")
    engine = make_engine(db_url)
    with Session(engine) as s:
        (games,) = [g.grant for g in grants_in_force(s, datetime.now(UTC))[0] if g.grant.approved_by == f"head{suffix}"]
    engine.dispose()
    clock = tmp_path / "gateway-clock"

    # A minute before the lesson's end, still through; at its end, blocked: nothing in the store changed and the
    # proxy was not restarted. (The always-lesson timetable keeps the moved instant in lesson time.)
    clock.write_text((games.expires - timedelta(minutes=1)).isoformat())
    time.sleep(1.0)
    assert pupil.goto("http://games.example/play").status == 200
    clock.write_text(games.expires.isoformat())
    status_within(pupil, "http://games.example/play", 403, time.monotonic())
    assert "Games are not allowed in lessons" in pupil.inner_text("body")
    # The block page reads the request's outcome at the gateway's instant too.
    assert re.search(r"You asked for access on .*: approved until .*; that has ended", pupil.inner_text("body"))
    # The grants page still lists it: it ended by the gateway's clock, not the console's.
    head.reload()
    assert "games.example" in head.inner_text("main")
