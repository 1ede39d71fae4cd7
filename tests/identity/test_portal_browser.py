"""Captive-portal sign-in in real Chromium (Playwright) through a real mitmdump, over plain HTTP as captive portals
are met: the pupil asks for a page, lands on the sign-in page, signs in (password, or pictures for a young year
group), carries on to the page they asked for, and sees their name on a block page; signing out sends them back.

Chromium's proxied requests come from 127.0.0.1, the one address the test policy puts on a sign-in-required
network. Chromium reaches the sign-in page (the console app on 127.0.0.1) directly, as browsers are set up to
reach the gateway itself (Playwright would otherwise send loopback through the proxy, and the test harness would
route it to the test origin), so the web app sees the same address.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gateway.identity.credentials import PICTURES, hash_secret, picture_code_text
from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.store.models.people import PersonRecord
from gateway.web.app import ConsoleConfig, create_app
from tests.support.policies import always_lesson_policy
from tests.support.waitress_thread import waitress_thread

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip

POLICY = always_lesson_policy(
    """\
school: {name: Test Primary School, contact: "Mrs Khan, the e-safety lead"}
groups: {pupil: {}, infants: {}, guest: {}}
default_group: guest
sign_in: {picture_code_year_groups: [1, 2], idle_timeout_minutes: 30}
networks:
  - name: classroom-wifi
    subnets: [127.0.0.1/32]
    group: guest
    identity: [portal, subnet]
    sign_in_required: true
""",
    """\
rules:
  - {id: no-games, domains: [games.example], action: block, reason: Games are not allowed in lessons}
""",
)
AMY_CODE = ["cat", "sun", "boat", "tree"]
BEN_PASSWORD = "green-rocket-42"


@pytest.fixture
def school(tmp_path: Path, store: sessionmaker[Session]) -> Path:
    with store.begin() as s:
        import_people(s, [Person("amy", "Amy Jones", "infants", year_group=1, school_class="1A"),
                          Person("ben", "Ben Smith", "pupil", year_group=5, school_class="5S")])
        for r in s.query(PersonRecord):
            if r.username == "amy":
                r.picture_code_hash = hash_secret(picture_code_text(AMY_CODE))
            else:
                r.password_hash = hash_secret(BEN_PASSWORD)
    (tmp_path / "lists").mkdir()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return policy


@pytest.fixture
def portal(school: Path, store_url: str, tmp_path: Path) -> Iterator[str]:
    """The console app (which serves the sign-in pages) under waitress, as in production."""
    app = create_app(ConsoleConfig(db_url=store_url, secret_key_file=str(tmp_path / "secret"),
                                   policy_path=str(school), portal_link_key_file=str(tmp_path / "portal-link-key")))
    with waitress_thread(app) as server:
        yield f"http://127.0.0.1:{server.effective_port}"


@pytest.fixture
def gateway(mitmdump_proxy, origin_http, portal: str, school: Path, store_url: str,
            tmp_path: Path):  # type: ignore[no-untyped-def]
    # The proxy signs the page it sends a device from with the key the portal checks (gateway.identity.portal_link).
    return mitmdump_proxy(["addons/gateway.py"], {
        "gateway_policy": str(school), "gateway_db": store_url, "gateway_portal_url": portal,
        "gateway_portal_link_key": str(tmp_path / "portal-link-key"), "gateway_identity_interval_ms": 200,
    }, origin=origin_http, ready_line="identity sources running")


@pytest.fixture
def page(gateway):  # type: ignore[no-untyped-def]
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/bootstrap installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                    proxy={"server": gateway.proxy_url, "bypass": "127.0.0.1"})
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(10_000)
        yield page
        context.close()
        browser.close()


def carry_on(page, url: str) -> None:  # type: ignore[no-untyped-def]
    """Follow the signed-in page's link back to the page first asked for."""
    page.get_by_role("link", name=f"Carry on to {url}").click()
    page.wait_for_url(url)


def test_pupil_signs_in_with_a_password_and_out_again(page, portal: str, origin_http, tmp_path: Path) -> None:
    page.goto("http://example.org/")
    assert page.url.startswith(f"{portal}/portal/sign-in?next=http")
    assert page.inner_text("h1") == "Sign in to the school WiFi"
    assert not origin_http.seen(host="example.org")
    page.screenshot(path=str(tmp_path / "sign-in.png"), full_page=True)

    page.get_by_label("Username").fill("Ben")
    page.get_by_label("Password").fill("not-my-password")
    page.get_by_role("button", name="Sign in").click()
    assert "do not match" in page.get_by_role("alert").inner_text()
    page.get_by_label("Password").fill(BEN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    assert page.inner_text("h1") == "Hello, Ben Smith"

    carry_on(page, "http://example.org/")
    assert "origin ok: example.org/" in page.inner_text("body")

    response = page.goto("http://games.example/play")
    assert response is not None and response.status == 403
    assert "Signed in as Ben Smith" in page.inner_text("body")

    page.goto(f"{portal}/portal/sign-in")
    assert "signed in as ben" in page.inner_text("main").lower()
    page.get_by_role("button", name="Sign out").click()
    assert page.inner_text("h1") == "Signed out"
    page.get_by_role("link", name="Sign in").click()
    assert page.inner_text("h1") == "Sign in to the school WiFi"
    assert "signed in as" not in page.inner_text("main").lower()
    # The proxy hears of the sign-out at its next reload of sessions (200 ms here, a second by default).
    deadline = time.monotonic() + 5
    while True:
        page.goto("http://example.org/next-lesson")
        if page.url.startswith(f"{portal}/portal/sign-in?next=http") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert page.url.startswith(f"{portal}/portal/sign-in?next=http")
    assert page.inner_text("h1") == "Sign in to the school WiFi"


def test_young_pupil_signs_in_with_pictures(page, portal: str, tmp_path: Path) -> None:
    page.goto("http://example.org/phonics")
    page.get_by_role("link", name="Sign in with pictures").click()
    page.get_by_role("link", name="1A").click()
    page.get_by_role("link", name="Amy J.").click()
    # A wrong picture first: told to try again, not signed in.
    for n, picture in enumerate(["cat", "sun", "boat", "moon"]):
        page.get_by_role("group", name=f"Picture {n + 1}").get_by_text(PICTURES[picture]).click()
    page.screenshot(path=str(tmp_path / "pictures.png"), full_page=True)
    page.get_by_role("button", name="Sign in").click()
    assert "not right" in page.get_by_role("alert").inner_text()
    for n, picture in enumerate(AMY_CODE):
        page.get_by_role("group", name=f"Picture {n + 1}").get_by_text(PICTURES[picture]).click()
    page.get_by_role("button", name="Sign in").click()
    assert page.inner_text("h1") == "Hello, Amy Jones"

    carry_on(page, "http://example.org/phonics")
    assert "origin ok: example.org/phonics" in page.inner_text("body")
    page.goto("http://games.example/")
    assert "Signed in as Amy Jones" in page.inner_text("body")
