"""`gateway console --smtp-host` runs the notifier: a high-risk report made while it serves is mailed within seconds."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from gateway.store.engine import make_engine, session_factory
from gateway.store.migrate import upgrade
from gateway.store.reports import create_report
from tests.support.inbox import Inbox
from tests.support.policies import write_policy
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_the_console_process_mails_a_due_alert(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(url)
    policy = write_policy(tmp_path, "reports: {alerts: {recipients: [dsl@school.example], digest: false}}\n")
    inbox = Inbox().start()
    port = free_port()
    console = subprocess.Popen(
        [sys.executable, "-m", "gateway", "console", "--db", url, "--policy", str(policy), "--port", str(port),
         "--secret-file", str(tmp_path / "secret"), "--portal-link-key-file", str(tmp_path / "link-key"),
         "--public-url", "https://gateway.school.example/", "--smtp-host", "127.0.0.1",
         "--smtp-port", str(inbox.port), "--mail-from", "gateway@school.example"],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert console.stderr is not None and "console on" in console.stderr.readline()
        with session_factory(make_engine(url)).begin() as store:
            create_report(store, kind="person", queue="officer", url="https://bad.example/", host="bad.example",
                          category="self_harm", person={"username": "amy", "display_name": "Amy Jones"},
                          alert=True, now=datetime.now(UTC))  # fmt: skip
        (mail,) = inbox.wait_for(1, timeout=20)
        assert mail["From"] == "gateway@school.example" and mail["To"] == "dsl@school.example"
        assert "https://gateway.school.example/reports/1" in mail.get_content()
    finally:
        console.terminate()
        console.wait(timeout=10)
        inbox.stop()
