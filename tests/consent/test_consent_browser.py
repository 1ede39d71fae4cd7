"""The DPO records a pupil's consent in real Chromium: from the register to the pupil's page, the form, and back to
the register showing what is now in force."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.store.engine import make_engine
from gateway.web.app import ConsoleConfig, create_app
from tests.console.seed import seed
from tests.support.browser import chromium, served, staff_page

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_the_dpo_records_consent_in_the_browser(tmp_path: Path) -> None:
    url = seed(tmp_path)
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        import_people(s, [Person("amy", "Amy Pupil", "pupil", year_group=6, school_class="6B")])
    engine.dispose()
    app = create_app(ConsoleConfig(db_url=url, secret_key_file=str(tmp_path / "secret")))
    with served(app) as console, chromium() as browser:
        page = staff_page(browser, console, "dpo")
        page.get_by_role("link", name="Image consent").click()
        page.get_by_role("link", name="Amy Pupil").click()
        assert page.locator("#standing").inner_text() == "no consent"
        page.get_by_label("Images may be posted").check()
        page.get_by_label("school social media").uncheck()
        page.get_by_label("Written source", exact=True).fill("signed form, parents' evening")
        page.get_by_role("button", name="Save").click()
        page.get_by_text("Consent recorded for amy").wait_for()
        assert page.locator("#standing").inner_text() == "images: school website, newsletter"
        assert "signed form, parents' evening" in page.locator("#history").inner_text()
        page.get_by_role("link", name="Back to the register").click()
        assert "images: school website, newsletter" in page.locator("table").inner_text()
