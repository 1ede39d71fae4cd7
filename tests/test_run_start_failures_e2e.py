"""`gateway run --workers 2` when a worker cannot start, as a technician meets it: the gateway stops within seconds
of the failure (not after half a minute of restarts), takes the console and the other worker down with it, says
which worker failed in that worker's own words, and exits non-zero. A database it cannot reach stops it before
anything starts, in one line."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.policies import demo_policy_files
from tests.support.ports import free_port
from tests.test_workers_e2e import two_free_ports

ROOT = Path(__file__).resolve().parents[1]
GATEWAY = [sys.executable, "-c", "from gateway.cli.main import cli; cli()"]
# From the failing worker's error to `gateway run` gone, console and other worker stopped (about 2 s on a quiet
# machine; a loaded one takes longer just to end processes). Restarting it first took more than 26 s.
PROMPTLY = 10.0

pytestmark = pytest.mark.e2e


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Run:
    """`gateway run` in a school's folder, its output lines stamped as they come."""

    def __init__(self, home: Path, *args: str) -> None:
        self.port, self.console = two_free_ports(), free_port()
        self.child = subprocess.Popen(
            [*GATEWAY, "run", "--workers", "2", "--listen-host", "127.0.0.1", "--listen-port", str(self.port),
             "--console-port", str(self.console), *args],
            cwd=home, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip
        self.lines: list[tuple[float, str]] = []
        assert self.child.stdout is not None
        stream = self.child.stdout
        self._reader = threading.Thread(
            target=lambda: self.lines.extend((time.monotonic(), line) for line in iter(stream.readline, "")),
            daemon=True,
        )
        self._reader.start()

    def text(self) -> str:
        return "".join(line for _, line in self.lines)

    def finish(self, timeout: float = 120.0) -> tuple[int, float]:
        """The exit status, and when it came."""
        code = self.child.wait(timeout=timeout)
        ended = time.monotonic()
        self._reader.join(10)
        return code, ended

    def first(self, needle: str) -> float:
        return next(at for at, line in self.lines if needle in line)

    def kill(self) -> None:
        if self.child.poll() is None:
            os.killpg(self.child.pid, signal.SIGKILL)


def ran(home: Path, *args: str) -> tuple[Run, int, float]:
    """`gateway run` to its end: the run, its exit status and when it came (killed if it never ends)."""
    run = Run(home, *args)
    try:
        code, ended = run.finish()
    finally:
        run.kill()
    return run, code, ended


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "policies").symlink_to(ROOT / "policies")
    return tmp_path


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_a_worker_whose_metrics_port_is_taken_stops_the_gateway_at_once_with_its_reason(home: Path) -> None:
    metrics = free_port()
    with socket.socket() as squatter:
        # Another program holds worker 1's metrics port (BASE + 1).
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            squatter.bind(("127.0.0.1", metrics + 1))
        except OSError:
            pytest.skip("the port after a free one is in use on this machine")
        squatter.listen()
        run, code, ended = ran(home, "--metrics-port", str(metrics))
    out = run.text()
    assert code == 1, out
    # In the worker's own words, named, at the end where the technician looks.
    said = out[out.index(f"Error: worker 1 (port {run.port + 1}) could not start (exit status 1); its last lines:"):]
    assert f"gateway_metrics_listen 127.0.0.1:{metrics + 1}: cannot listen there (Address already in use)" in said
    failed_at = run.first("cannot listen there")
    assert ended - failed_at < PROMPTLY, f"stopped {ended - failed_at:.1f} s after the worker failed:\n{out}"
    assert "restarting" not in out, "a worker that never served is not restarted"
    # Console and the other worker stopped with it: nothing left listening, no child left.
    assert not listening(run.console) and not listening(run.port) and not listening(metrics)
    assert children_of(run.child.pid) == []


def test_a_list_gone_bad_stops_the_gateway_at_once_naming_the_file_and_line(home: Path) -> None:
    """The policy loads when `gateway run` reads it, but a list it names holds a binary line: every worker refuses
    it when compiling, so nothing would ever filter. The gateway says so and stops, rather than restarting them."""
    school = home / "school"
    demo_policy_files(school, copy_lists=True)
    shutil.copy(ROOT / "policies" / "default.yaml", school / "school.yaml")
    bad = school / "lists" / "social_media_named.txt"
    bad.write_bytes(bad.read_bytes() + b"\xff\xfe\x00not-a-domain\n")
    run, code, ended = ran(home, "--policy", str(school / "school.yaml"))
    out = run.text()
    assert code == 1, out
    error = out[out.index("Error: worker "):]
    assert "could not start (exit status 1)" in error and "social_media_named.txt" in error, out
    assert ended - run.first("social_media_named.txt") < PROMPTLY, out
    assert not listening(run.console) and not listening(run.port) and not listening(run.port + 1)
    assert children_of(run.child.pid) == []


def test_a_database_that_cannot_be_reached_stops_the_gateway_before_anything_starts(home: Path) -> None:
    nowhere = free_port()
    run, code, _ended = ran(home, "--db", f"postgresql+psycopg://gateway:secret-pw@127.0.0.1:{nowhere}/gateway")
    out = run.text()
    assert code == 1, out
    said = f"Error: database postgresql+psycopg://gateway:***@127.0.0.1:{nowhere}/gateway cannot be reached: "
    assert out.splitlines()[-1].startswith(said + "connection failed: "), out
    assert "Traceback" not in out and "secret-pw" not in out
    assert not listening(run.console) and not listening(run.port) and children_of(run.child.pid) == []
