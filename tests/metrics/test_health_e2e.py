"""`gateway health` as a monitoring system runs it, against `gateway run` started as a school starts it: OK while
everything works; WARNING while access-log rows wait on disk because the database will not take them; CRITICAL
when the database cannot be reached and when the proxy has stopped. Exit codes are the monitoring plugins' own."""

from __future__ import annotations

import json
import os
import re
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
from click.testing import CliRunner, Result

from gateway.cli.main import cli
from tests.support.policies import demo_policy_files
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = [sys.executable, "-c", "from gateway.cli.main import cli; cli()"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

pytestmark = pytest.mark.e2e


@dataclass
class School:
    home: Path
    proxy_ports: list[int]
    console_port: int
    metrics_ports: list[int]
    child: subprocess.Popen[bytes]

    def health(self, *args: str) -> Result:
        """`gateway health` with the options `gateway run` was given (in this process: a monitoring system starts
        a new one each time, but the command's outcome is the same and the test is seconds faster)."""
        each = [f"--proxy=127.0.0.1:{p}" for p in self.proxy_ports]
        each += [f"--metrics=127.0.0.1:{p}" for p in self.metrics_ports]
        return CliRunner().invoke(cli, [
            "health", *each, "--console", f"http://127.0.0.1:{self.console_port}", "--var", str(self.home / "var"),
            "--policy", str(self.home / "school.yaml"), *args,
        ])  # fmt: skip

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
    proxy_port, console_port, metrics_port = free_port(), free_port(), free_port()
    output = home / "gateway-run.log"
    with open(output, "wb") as out:
        # Two workers, each with its metrics endpoint: the checks a machine with several cores needs.
        child = subprocess.Popen(
            [*GATEWAY, "run", "--policy", "school.yaml", "--listen-host", "127.0.0.1", "--listen-port",
             str(proxy_port), "--console-port", str(console_port), "--workers", "2", "--metrics-port",
             str(metrics_port)],
            cwd=home, env=ENV, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 90
    ports: list[int] = []
    while not ports or not all(listening(p) for p in [*ports, console_port]):
        assert child.poll() is None, output.read_text(errors="replace")
        assert time.monotonic() < deadline, "gateway run did not start in 90 s:\n" + output.read_text(errors="replace")
        said = re.search(r"proxy: +127\.0\.0\.1 ports ([\d, ]+)", output.read_text(errors="replace"))
        ports = [int(p) for p in said[1].split(", ")] if said else []
        time.sleep(0.2)
    school = School(home, ports, console_port, [metrics_port, metrics_port + 1], child)
    yield school
    school.stop()


def eventually_health(school: School, code: int, timeout: float = 60.0) -> Result:
    deadline = time.monotonic() + timeout
    while True:
        got = school.health()
        if got.exit_code == code or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def test_ok_against_a_running_gateway(school):
    # The proxy may still be loading its policy when its port opens: a monitoring system retries too.
    got = eventually_health(school, 0)
    assert got.exit_code == 0, got.output
    lines = got.output.splitlines()
    assert lines[0].startswith("GATEWAY OK - ")
    for port in school.proxy_ports:
        assert any(line.startswith(f"OK proxy 127.0.0.1:{port}: answered and decided") for line in lines), port
    for port in school.metrics_ports:
        assert f"OK metrics 127.0.0.1:{port}: answers" in lines
    assert any(line.startswith("OK database ") and "migrated" in line for line in lines)
    assert any(line.startswith("OK CA certificate ") and "expires on" in line for line in lines)
    ports = ", ".join(map(str, school.proxy_ports))
    assert (f"OK PAC file http://127.0.0.1:{school.console_port}/proxy.pac: sends devices to the 2 worker ports "
            f"({ports}), never DIRECT") in lines
    as_json = json.loads(school.health("--json").output)
    assert as_json["status"] == "OK" and all(c["status"] == "OK" for c in as_json["checks"])


def test_warning_while_rows_wait_on_disk_for_a_locked_database(school):
    database = sqlite3.connect(school.home / "var" / "gateway.db", timeout=30)
    try:
        # Another program holds the write lock: the writer's batch waits, gives up and is spooled. The database
        # is still reachable and migrated: only the backlog is wrong.
        database.execute("BEGIN IMMEDIATE")
        got = eventually_health(school, 1)  # its own self-check request is the row that waits
        assert got.exit_code == 1, got.output
        assert got.output.startswith("GATEWAY WARNING - access-log spool: ")
        assert "batches of access-log rows waiting" in got.output
        assert any(line.startswith("OK database ") for line in got.output.splitlines())
    finally:
        database.rollback()
        database.close()
    # Let go, the writer replays the spool and the gateway is healthy again.
    recovered = eventually_health(school, 0)
    assert recovered.exit_code == 0, recovered.output


def test_the_pac_file_devices_get_is_checked_for_direct_and_for_every_worker(school):
    """What the console serves devices, as they fetch it: a PAC file edited to fall back to DIRECT (the web
    unfiltered whenever the proxy is slow to answer) is CRITICAL; one left from a run with other workers WARNS, as
    does none served at all."""
    pac = school.home / "var" / "proxy.pac"
    written = pac.read_text()
    url = f"http://127.0.0.1:{school.console_port}/proxy.pac"
    first, second = school.proxy_ports
    try:
        pac.write_text(written.replace("return choice;", 'return choice + "; DIRECT";'))
        got = school.health()
        assert got.exit_code == 2, got.output
        assert (f"CRITICAL PAC file {url}: says DIRECT: a device whose proxy does not answer would browse "
                "unfiltered") in got.output.splitlines()

        pac.write_text(written.replace(f"[{first}, {second}]", f"[{first}, {second + 7}]"))
        got = school.health()
        assert got.exit_code == 1, got.output
        assert got.output.splitlines()[0] == (
            f"GATEWAY WARNING - PAC file {url}: leaves out worker port {second} (no device is sent there); names "
            f"port {second + 7}, not among the workers checked (devices sent there wait for a proxy that may not be "
            "the gateway): is it from an earlier gateway run?")

        assert "PAC file" not in school.health("--no-pac").output

        pac.rename(pac.with_name("proxy.pac.moved"))
        got = school.health()
        assert got.exit_code == 0, got.output
        assert (f"OK PAC file {url}: none served, none written (transparent or fixed-port devices); a device given "
                "this address would go without a proxy") in got.output.splitlines()
    finally:
        pac.with_name("proxy.pac.moved").unlink(missing_ok=True)
        pac.write_text(written)
    assert eventually_health(school, 0).exit_code == 0


def test_critical_when_the_database_cannot_be_reached(school):
    nowhere = f"postgresql+psycopg://gateway@127.0.0.1:{free_port()}/gateway"
    got = school.health("--db", nowhere)
    assert got.exit_code == 2, got.output
    assert got.output.startswith("GATEWAY CRITICAL - database postgresql+psycopg://gateway@127.0.0.1:")
    assert "unreachable" in got.output.splitlines()[0]


def test_critical_when_the_proxy_has_stopped(school):
    # Last in this file: it stops the school's gateway.
    school.stop()
    got = school.health()
    assert got.exit_code == 2, got.output
    first = got.output.splitlines()[0]
    assert first.startswith("GATEWAY CRITICAL - ")
    for port in school.proxy_ports:
        assert f"proxy 127.0.0.1:{port}: no answer" in first
    for port in school.metrics_ports:
        assert f"metrics 127.0.0.1:{port}: no answer" in first
