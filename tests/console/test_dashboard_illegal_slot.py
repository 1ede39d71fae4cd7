"""The dashboard tells the officer, on every view, when the illegal-content slot holds no licensed entries."""

from __future__ import annotations

import shutil
from pathlib import Path

from gateway.web.app import ConsoleConfig, create_app
from tests.console.seed import seed
from tests.console.test_console_app import sign_in
from tests.support.policies import DEMO_POLICY, demo_policy_files


def console_for(folder: Path, db_url: str, *, iwf: str | None = None):  # type: ignore[no-untyped-def]
    demo_policy_files(folder, copy_lists=True)
    shutil.copy(DEMO_POLICY, folder / "default.yaml")
    if iwf is not None:
        (folder / "lists" / "illegal_iwf.txt").write_text(iwf)
    config = ConsoleConfig(db_url=db_url, secret_key="k", policy_path=str(folder / "default.yaml"))
    client = create_app(config).test_client()
    sign_in(client, "officer")
    return client


def test_empty_slot_banner_on_the_dashboard(tmp_path):
    url = seed(tmp_path)
    empty = console_for(tmp_path / "empty", url).get("/dashboard").get_data(as_text=True)
    assert 'role="alert" id="illegal-slot"' in empty
    assert "THE ILLEGAL-CONTENT SLOT IS EMPTY" in empty and "(iwf, ctiru)" in empty

    filled = console_for(tmp_path / "filled", url, iwf="abuse-content.invalid\n").get("/dashboard")
    assert filled.status_code == 200 and "illegal-slot" not in filled.get_data(as_text=True)

    no_policy = create_app(ConsoleConfig(db_url=url, secret_key="k")).test_client()
    sign_in(no_policy, "officer")
    assert "illegal-slot" not in no_policy.get("/dashboard").get_data(as_text=True)
