"""`gateway health` as a monitoring system runs it, against `gateway run` started as a school starts it: OK while
everything works; WARNING while access-log rows wait on disk because the database will not take them; CRITICAL
when the database cannot be reached and when the proxy has stopped. Exit codes are the monitoring plugins' own."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.policies import demo_policy_files
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = [sys.executable, "-c", "from gateway.cli.main import cli; cli()"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

pytestmark = pytest.mark.e2e


@dataclass
class School:
    home: Path
    proxy_port: int
    console_port: int
    child: subprocess.Popen[str]

    def health(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*GATEWAY, "health", "--proxy", f"127.0.0.1:{self.proxy_port}",
             "--console", f"http://127.0.0.1:{self.console_port}", "--policy", "school.yaml", *args],
            cwd=self.home, env=ENV, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    def stop(self) -> None:
        if self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
            try:
                self.child.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.child.pid, signal.SIGKILL)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def school(tmp_path_factory) -> Iterator[School]:
    home = tmp_path_factory.mktemp("school")
    demo_policy_files(home)
    (home / "school.yaml").write_text((ROOT / "policies" / "default.yaml").read_text())
    proxy_port, console_port = free_port(), free_port()
    child = subprocess.Popen(
        [*GATEWAY, "run", "--policy", "school.yaml", "--listen-host", "127.0.0.1", "--listen-port", str(proxy_port),
         "--console-port", str(console_port)],
        cwd=home, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while not (listening(proxy_port) and listening(console_port)):
        assert child.poll() is None, child.stdout.read() if child.stdout else ""
        assert time.monotonic() < deadline, "gateway run did not start in 90 s"
        time.sleep(0.2)
    school = School(home, proxy_port, console_port, child)
    yield school
    school.stop()


def eventually_health(school: School, code: int, timeout: float = 60.0, *args: str) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + timeout
    while True:
        got = school.health(*args)
        if got.returncode == code or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def test_ok_against_a_running_gateway(school):
    # The proxy may still be loading its policy when its port opens: a monitoring system retries too.
    got = eventually_health(school, 0)
    assert got.returncode == 0, got.stdout + got.stderr
    lines = got.stdout.splitlines()
    assert lines[0].startswith("GATEWAY OK - ")
    assert any(line.startswith(f"OK proxy 127.0.0.1:{school.proxy_port}: answered and decided") for line in lines)
    assert any(line.startswith("OK database ") and "migrated" in line for line in lines)
    assert any(line.startswith("OK CA certificate ") and "expires on" in line for line in lines)
    as_json = json.loads(school.health("--json").stdout)
    assert as_json["status"] == "OK" and all(c["status"] == "OK" for c in as_json["checks"])


def test_warning_while_rows_wait_on_disk_for_a_locked_database(school):
    database = sqlite3.connect(school.home / "var" / "gateway.db", timeout=30)
    try:
        # Another program holds the write lock: the writer's batch waits, gives up and is spooled. The database
        # is still reachable and migrated: only the backlog is wrong.
        database.execute("BEGIN IMMEDIATE")
        got = eventually_health(school, 1)  # its own self-check request is the row that waits
        assert got.returncode == 1, got.stdout + got.stderr
        assert got.stdout.startswith("GATEWAY WARNING - access-log spool: ")
        assert "batches of access-log rows waiting" in got.stdout
        assert any(line.startswith("OK database ") for line in got.stdout.splitlines())
    finally:
        database.rollback()
        database.close()
    # Let go, the writer replays the spool and the gateway is healthy again.
    recovered = eventually_health(school, 0)
    assert recovered.returncode == 0, recovered.stdout


def test_critical_when_the_database_cannot_be_reached(school):
    nowhere = f"postgresql+psycopg://gateway@127.0.0.1:{free_port()}/gateway"
    got = school.health("--db", nowhere)
    assert got.returncode == 2, got.stdout + got.stderr
    assert got.stdout.startswith("GATEWAY CRITICAL - database postgresql+psycopg://gateway@127.0.0.1:")
    assert "unreachable" in got.stdout.splitlines()[0]


def test_critical_when_the_proxy_has_stopped(school):
    # Last in this file: it stops the school's gateway.
    school.stop()
    got = school.health()
    assert got.returncode == 2, got.stdout + got.stderr
    first = got.stdout.splitlines()[0]
    assert first.startswith("GATEWAY CRITICAL - ") and f"proxy 127.0.0.1:{school.proxy_port}: no answer" in first
