"""Debian's Chromium through Playwright, optionally through a gateway, and the console served by waitress as in
production: the parts every browser test needs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.support.console import PASSWORD
from tests.support.waitress_thread import waitress_thread

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip


@contextmanager
def chromium(proxy_url: str | None = None, **launch: Any) -> Iterator[Any]:
    """A Chromium browser; with `proxy_url`, every page but the console on 127.0.0.1 goes through that proxy."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/bootstrap installs it)")
    from playwright.sync_api import sync_playwright

    if proxy_url is not None:
        launch["proxy"] = {"server": proxy_url, "bypass": "127.0.0.1"}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, **launch)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def served(app: Any) -> Iterator[str]:
    """The Flask app on a waitress server on a free loopback port; yields its base URL."""
    with waitress_thread(app) as server:
        yield f"http://127.0.0.1:{server.effective_port}"


def staff_page(browser: Any, console_url: str, username: str, password: str = PASSWORD) -> Any:
    """A new browser context signed in to the console as `username`."""
    page = browser.new_context().new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{console_url}/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    return page
