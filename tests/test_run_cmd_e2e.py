"""The commands a school runs, run as a school runs them: `gateway run` from a fresh directory (the demo policy, the
demo roster), then the portal's picture sign-in and the console through the proxy, the access log carrying the
policy's site, and the README's `gateway check --user amy.p`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.clients import httpx_client
from tests.support.policies import demo_policy_files
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
GATEWAY = [sys.executable, "-c", "from gateway.cli.main import cli; cli()"]

pytestmark = pytest.mark.e2e


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def school(tmp_path: Path) -> Iterator[tuple[Path, int, int, subprocess.Popen[str]]]:
    """A school's machine: a directory with the shipped policies, and `gateway run --demo-data` in it, the demo
    policy plus picture sign-in for the youngest (as a school would turn it on)."""
    (tmp_path / "policies").symlink_to(ROOT / "policies")
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    demo_policy_files(pictures)
    demo = (ROOT / "policies" / "default.yaml").read_text()
    (pictures / "school.yaml").write_text(demo + "\nsign_in: {picture_code_year_groups: [0, 1, 2]}\n")
    proxy_port, console_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [*GATEWAY, "run", "--demo-data", "--policy", str(pictures / "school.yaml"), "--listen-host", "127.0.0.1",
         "--listen-port", str(proxy_port), "--console-port", str(console_port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (listening(proxy_port) and listening(console_port)):
        assert child.poll() is None, child.stdout.read() if child.stdout else ""
        assert time.monotonic() < deadline, "gateway run did not start in 60 s"
        time.sleep(0.2)
    try:
        yield tmp_path, proxy_port, console_port, child
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)


def test_gateway_run_serves_the_portal_and_console_through_its_proxy(school) -> None:  # type: ignore[no-untyped-def]
    home, proxy_port, console_port, child = school
    console = f"http://127.0.0.1:{console_port}"
    # The demo policy puts this machine on the pupil network; a device reaches the portal and console through the
    # proxy at the public address gateway run gave it, and the young pupils' picture sign-in is there.
    with httpx_client(proxy=f"http://127.0.0.1:{proxy_port}", source_address="127.0.0.2") as device:
        classes = device.get(f"{console}/portal/pictures")
        assert classes.status_code == 200 and "2A" in classes.text and "RA" in classes.text
        assert "6B" not in classes.text, "year 6 signs in with a password"
        assert device.get(f"{console}/sign-in").status_code == 200
        blocked = device.get("http://www.facebook.com/", headers={"Accept": "text/html"})
        assert blocked.status_code == 403
    # The blocked attempt reaches the log with the policy's school.site.
    engine = create_engine(f"sqlite:///{home / 'var' / 'gateway.db'}")
    deadline = time.monotonic() + 15
    rows: list[tuple[str, str | None]] = []
    while not rows and time.monotonic() < deadline:
        time.sleep(0.5)
        with engine.connect() as c:
            rows = list(c.execute(text("SELECT host, site FROM access_log WHERE host = 'www.facebook.com'")))
    engine.dispose()
    assert rows and rows[0][1] == "perryfields"


def test_the_readme_check_for_amy_works_after_the_demo(school) -> None:  # type: ignore[no-untyped-def]
    home, _proxy, _console, child = school
    # As the README says, from the same directory, with nothing else set up.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    check = subprocess.run([*GATEWAY, "check", "--user", "amy.p", "--json", "https://example.org/"], cwd=home,
                           env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert check.returncode == 0, check.stderr
    got = json.loads(check.stdout)
    assert (got["user"], got["group"], got["year_group"]) == ("amy.p", "pupil", 6)
    check = subprocess.run([*GATEWAY, "check", "--user", "amy.p", "https://www.facebook.com/"], cwd=home, env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert check.returncode == 0 and check.stdout.startswith("BLOCK"), check.stderr
