"""The officer's one-click block in real Chromium through a real mitmdump: a pupil's visit to a flagged forum
becomes a report, the officer opens it from the queue and blocks the site, and the pupil's next visit gets the
block page within 5 seconds; the officer lifts it on the local blocks page and the forum is back within 5 seconds.

Chromium reaches the console (waitress on 127.0.0.1) directly, as in the unblock browser test.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.accounts import create_user
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.models.reports import Report
from gateway.web.app import ConsoleConfig, create_app
from tests.support.browser import chromium, served, staff_page
from tests.support.console import PASSWORD
from tests.support.policies import always_lesson_policy

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

LIVE_WITHIN = 5.0
POLICY = always_lesson_policy("""\
school: {name: Test Primary School, contact: the e-safety officer}
groups: {pupil: {}, guest: {}}
default_group: guest
networks:
  - {name: classroom, subnets: [127.0.0.1/32], group: pupil}
reports: {block_list: local_blocks}
""", """\
lists:
  local_blocks: {domains: []}
  forums: {domains: [forum.example]}
rules:
  - {id: local-blocks, lists: [local_blocks], action: block, reason: The e-safety officer blocked this site after a report.}
  - {id: watch-forums, lists: [forums], action: flag, reason: Forums are reported to the e-safety officer.}
""")  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    db = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(db)
    engine = make_engine(db)
    with Session(engine) as s, s.begin():
        create_user(s, "officer", "Olive Officer", "officer", PASSWORD)
    engine.dispose()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    app = create_app(ConsoleConfig(db_url=db, secret_key_file=str(tmp_path / "secret"), policy_path=str(policy)))
    with served(app) as url:
        yield db, url, policy


@pytest.fixture
def browser(mitmdump_proxy, origin_http, setup, tmp_path: Path):  # type: ignore[no-untyped-def]
    db, _, policy = setup
    gateway = mitmdump_proxy(["addons/gateway.py"], {
        "gateway_policy": str(policy), "gateway_db": db, "gateway_spool": str(tmp_path / "spool"),
    }, origin=origin_http, ready_line="identity sources running")  # fmt: skip
    with chromium(gateway.proxy_url) as browser:
        yield browser


def status_within(page, url: str, wanted: int) -> float:  # type: ignore[no-untyped-def]
    since = time.monotonic()
    while (status := page.goto(url).status) != wanted:
        assert time.monotonic() - since < LIVE_WITHIN, f"still {status} after {LIVE_WITHIN}s"
        time.sleep(0.2)
    return time.monotonic() - since


def test_the_officer_blocks_a_reported_forum_in_one_click_and_lifts_it(browser, setup, tmp_path: Path) -> None:
    db, console_url, _ = setup
    pupil = browser.new_context().new_page()
    pupil.set_default_timeout(10_000)
    assert pupil.goto("http://forum.example/thread/7").status == 200
    engine = make_engine(db)
    since = time.monotonic()
    with Session(engine) as s:
        while s.scalars(select(Report)).first() is None:
            assert time.monotonic() - since < 10, "the flagged visit made no report"
            time.sleep(0.1)
    engine.dispose()

    officer = staff_page(browser, console_url, "officer")
    officer.get_by_role("link", name="Reports", exact=True).click()
    assert "forum.example/thread/7" in officer.inner_text("#reports")
    officer.get_by_role("link", name=re.compile(r"^Report \d+$")).click()
    assert "watch-forums" not in officer.inner_text("#report") and "forums" in officer.inner_text("#report")
    officer.get_by_role("button", name="Block the site forum.example (and its subdomains)").click()
    assert "forum.example is blocked for the whole school (list local_blocks)" in officer.inner_text("main")
    officer.screenshot(path=str(tmp_path / "blocked.png"), full_page=True)
    blocked_in = status_within(pupil, "http://forum.example/thread/7", 403)
    assert "The e-safety officer blocked this site after a report." in pupil.inner_text("body")

    officer.get_by_role("link", name="Local blocks").click()
    officer.get_by_label("Reason").fill("The forum removed the thread")
    officer.get_by_role("button", name="Lift").click()
    assert "lifted by officer" in officer.inner_text("main")
    lifted_in = status_within(pupil, "http://forum.example/thread/7", 200)
    print(f"\nbrowser: blocked in {blocked_in:.2f}s, lifted in {lifted_in:.2f}s")
