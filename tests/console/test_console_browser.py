"""The console in real Chromium (Playwright), served by waitress as in production."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest

from gateway.web.app import ConsoleConfig, create_app
from tests.console.seed import HOSTILE_PATH, PASSWORD, seed
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.waitress_thread import waitress_thread

pytestmark = pytest.mark.browser



@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("console")
    app = create_app(ConsoleConfig(db_url=seed(tmp), secret_key_file=str(tmp / "secret")))
    with waitress_thread(app) as server:
        yield f"http://127.0.0.1:{server.effective_port}"


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    import os

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    yield page
    context.close()


def sign_in(page, console: str, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{console}/logs")
    assert "/sign-in" in page.url
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_officer_filters_by_pupil_opens_timeline_exports_and_sees_charts(page, console):
    sign_in(page, console, "officer")
    page.click("text=Access log")
    page.fill("input[name=person]", "amy")
    page.select_option("select[name=action]", "block")
    page.get_by_role("button", name="Filter", exact=True).click()
    rows = page.locator("table.log tbody tr")
    assert rows.count() == 2
    assert "www.tiktok.com" in page.inner_text("table.log") and "roblox" not in page.inner_text("table.log")

    with page.expect_download() as download_info:
        page.click("#export-csv")
    exported = list(csv.DictReader(io.StringIO(open(download_info.value.path(), encoding="utf-8").read())))
    assert sorted(r["host"] for r in exported) == ["evil.example", "www.tiktok.com"]
    assert {r["username"] for r in exported} == {"amy"}

    page.click("table.log tbody tr >> nth=0 >> a")
    assert "/logs/person/amy" in page.url
    timeline = page.inner_text("ol.timeline")
    assert "www.bbc.co.uk/bitesize" in timeline and "how to bypass school filter" in timeline
    assert "roblox" not in timeline

    page.click("text=Dashboard")
    assert page.locator("figure.chart").count() == 6
    assert page.locator("figure.chart svg rect.s-block").count() >= 1
    assert "www.tiktok.com" in page.inner_text("figure.chart >> nth=1")
    assert page.dialogs == []


def test_a_teacher_cannot_open_the_log(page, console):
    sign_in(page, console, "teacher")
    assert page.url.endswith("/my-classes/") and "Teaches column" in page.inner_text("main")
    assert page.locator("text=Access log").count() == 0
    response = page.goto(f"{console}/logs?person=amy")
    assert response.status == 403 and "amy" not in page.inner_text("main").lower().replace("not allowed", "")
    assert page.goto(f"{console}/api/v1/log").status == 403


def test_a_forged_form_without_csrf_token_is_refused(page, console):
    sign_in(page, console, "officer")
    page.goto(f"{console}/logs")
    with page.expect_navigation():
        page.evaluate(
            """() => { const f = document.createElement('form'); f.method = 'post'; f.action = '/logs/export.csv';
                       const i = document.createElement('input'); i.name = 'person'; i.value = 'amy';
                       f.appendChild(i); document.body.appendChild(f); f.submit(); }"""
        )
    assert "Form refused" in page.inner_text("h1")
    assert "CSRF" in page.inner_text("main")


def test_pages_escape_a_hostile_logged_url(page, console):
    sign_in(page, console, "headteacher")
    page.goto(f"{console}/logs?person=amy")
    assert HOSTILE_PATH in page.inner_text("table.log")
    page.goto(f"{console}/logs/person/amy")
    assert HOSTILE_PATH in page.inner_text("ol.timeline")
    page.goto(f"{console}/audit")
    assert "view_timeline" in page.inner_text("table.log")
    assert page.dialogs == [], "a logged <script> must never run"
