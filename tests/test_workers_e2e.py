"""Proxy workers: `gateway run --workers 2` as a school runs it (a port per worker, each filtering and logging, its
output named; the PAC file that spreads devices over them; a worker killed with SIGKILL while the other serves on,
then restarted), and two workers sharing one store and one policy, where grants, bans, local blocks and policy
changes are in force on both within 5 seconds at the default polling."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gateway.policy.model import ExceptionGrant
from gateway.store.grants import add_grant, end_grant
from gateway.store.local_blocks import add_block
from gateway.store.bans import ban_person
from tests.support.clients import curl
from tests.support.gateway import start_gateway
from tests.support.mitmdump import Mitmdump
from tests import test_bans_e2e as bans
from tests.support.policies import demo_policy_files
from tests.support.ports import free_port
from tests.support.stores import in_store

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
GATEWAY = [sys.executable, "-c", "from gateway.cli.main import cli; cli()"]
PUPIL = "127.0.0.2"
LIVE_WITHIN = 5.0


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def two_free_ports() -> int:
    """A port whose next port is free too, below the range the kernel hands out to outgoing connections (which
    would take one in the seconds before gateway run binds it, on a busy machine)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        port = random.randrange(10_000, low - 2)
        try:
            for candidate in (port, port + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


class Output:
    """A child's output lines, gathered by a thread as they come."""

    def __init__(self, child: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert child.stdout is not None
        stream = child.stdout
        self._thread = threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")), daemon=True)
        self._thread.start()

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, needle: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            assert time.monotonic() < deadline, f"{needle!r} not in the output:\n{self.text()[-4000:]}"
            time.sleep(0.1)


def status(port: int, url: str) -> int:
    return curl(url, proxy=f"http://127.0.0.1:{port}", source_address=PUPIL, headers={"Accept": "text/html"}).status


def worker_pid(run: subprocess.Popen[str], port: int) -> int:
    """The pid of `gateway run`'s child listening on `port`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == run.pid and str(port).encode() in argv and b"proxy" in argv:
            return int(entry.name)
    raise AssertionError(f"no worker of gateway run on port {port}")


School = tuple[Path, int, int, subprocess.Popen[str], Output]


@pytest.fixture
def school(tmp_path: Path) -> Iterator[School]:
    (tmp_path / "policies").symlink_to(ROOT / "policies")
    folder = tmp_path / "school"
    demo_policy_files(folder)
    shutil.copy(ROOT / "policies" / "default.yaml", folder / "school.yaml")
    port, console = two_free_ports(), free_port()
    while console in (port, port + 1):
        console = free_port()
    child = subprocess.Popen(
        [*GATEWAY, "run", "--workers", "2", "--policy", str(folder / "school.yaml"), "--listen-host", "127.0.0.1",
         "--listen-port", str(port), "--console-port", str(console)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    output = Output(child)
    deadline = time.monotonic() + 90
    while not (listening(port) and listening(port + 1) and listening(console)):
        assert child.poll() is None, output.text()
        assert time.monotonic() < deadline, f"gateway run did not start in 90 s:\n{output.text()}"
        time.sleep(0.2)
    try:
        yield tmp_path, port, console, child, output
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)


def test_gateway_run_with_two_workers_filters_on_both_and_restarts_a_killed_one(school: School) -> None:
    home, port, console, child, output = school
    # Each worker's port filters, and each request is logged.
    for worker_port in (port, port + 1):
        assert status(worker_port, "http://www.facebook.com/") == 403
        assert status(worker_port, "http://www.facebook.com/") == 403
    engine = create_engine(f"sqlite:///{home / 'var' / 'gateway.db'}")
    deadline = time.monotonic() + 20
    logged = 0
    while logged < 4 and time.monotonic() < deadline:
        time.sleep(0.3)
        with engine.connect() as c:
            logged = c.scalar(text("SELECT count(*) FROM access_log WHERE host = 'www.facebook.com'")) or 0
    engine.dispose()
    assert logged == 4, "every request through either worker is logged, once"
    # Each worker's output carries its name; gateway run says how devices find the workers.
    assert any(line.startswith("[worker 0] ") for line in output.lines), output.text()
    assert any(line.startswith("[worker 1] ") for line in output.lines), output.text()
    assert f"/proxy.pac as the automatic proxy configuration" in output.text()

    # A worker killed outright: the other serves on, gateway run says so and starts it again.
    victim = worker_pid(child, port + 1)
    os.kill(victim, signal.SIGKILL)
    output.wait_for(f"worker 1 (port {port + 1}) stopped (killed by SIGKILL)")
    assert status(port, "http://www.facebook.com/") == 403
    output.wait_for(f"worker 1 (port {port + 1}): restarting")
    deadline = time.monotonic() + 60
    while not listening(port + 1):
        assert time.monotonic() < deadline, output.text()[-4000:]
        time.sleep(0.2)
    # Listening comes just before the gateway's parts are all running; the first answers may be the start-up hold.
    deadline = time.monotonic() + 30
    while status(port + 1, "http://www.facebook.com/") != 403:
        assert time.monotonic() < deadline, output.text()[-4000:]
        time.sleep(0.3)
    assert worker_pid(child, port + 1) != victim
    assert child.poll() is None, "gateway run carries on"

    # Stopped cleanly: no worker left behind.
    workers = [worker_pid(child, p) for p in (port, port + 1)]
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == 0, output.text()[-4000:]
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def pac_choice(pac: str, address: str) -> str:
    script = f"{pac}\nfunction myIpAddress() {{ return {address!r}; }}\n"
    script += "console.log(FindProxyForURL('http://a/', 'a'));"
    return subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30, check=True).stdout.strip()


def test_the_pac_file_keeps_a_device_on_one_worker_and_falls_back_to_the_next(school: School) -> None:
    home, port, console, _child, _output = school
    fetched = curl(f"http://127.0.0.1:{console}/proxy.pac", proxy=None)
    assert fetched.status == 200 and fetched.headers["content-type"].startswith("application/x-ns-proxy-autoconfig")
    assert fetched.text == (home / "var" / "proxy.pac").read_text()
    if shutil.which("node") is None:
        pytest.skip("running the PAC file needs node (a JavaScript engine)")
    first, second = f"PROXY 127.0.0.1:{port}", f"PROXY 127.0.0.1:{port + 1}"
    addresses = [f"10.10.{n}.{n * 7 % 250}" for n in range(12)]
    choices = {address: pac_choice(fetched.text, address) for address in addresses}
    # Every device gets both workers, its own first: the browser tries the second when the first does not answer.
    assert set(choices.values()) == {f"{first}; {second}", f"{second}; {first}"}, choices
    # The same device, the same worker, every time.
    assert all(pac_choice(fetched.text, address) == choice for address, choice in list(choices.items())[:3])


def grant(lists: list[str], expires: datetime) -> ExceptionGrant:
    return ExceptionGrant(id="new", lists=lists, expires=expires, reason="test", approved_by="head", groups=["pupil"])


def test_grants_bans_local_blocks_and_policy_changes_reach_every_worker_within_5_seconds(tmp_path, origin) -> None:
    """Two workers as `gateway run --workers 2` makes them: one store, one policy file, one spool folder; the
    store's counters and the policy file polled at the defaults (every second). Pupils signed in at the portal."""
    db = f"sqlite:///{tmp_path / 'gateway.db'}"
    leases = bans.seed(db, tmp_path)
    policy = bans.policy_for(tmp_path / "policy")
    workers: list[Mitmdump] = []
    try:
        for n in range(2):
            workers.append(start_gateway(tmp_path / f"worker-{n}", policy, at="", origin=origin, gateway_db=db,
                                         gateway_spool=tmp_path / "spool", gateway_worker=str(n),
                                         gateway_leases=str(leases), gateway_portal_url=bans.PORTAL))  # fmt: skip

        def on_every_worker(url: str, wanted: int | str, device: str = bans.BEN) -> None:
            """`url` answers `wanted` (a status, or text in the page) through both workers within 5 s."""
            started = time.monotonic()
            for proxy in workers:
                while True:
                    got = bans.get(proxy, url, device)
                    if got.status == wanted or (isinstance(wanted, str) and wanted in got.text):
                        break
                    assert time.monotonic() - started < LIVE_WITHIN, f"{url} via {proxy.proxy_url}: {got.status}"
                    time.sleep(0.1)

        store = in_store(db)
        on_every_worker("http://www.tiktok.com/", 403)
        number = store(add_grant, grant(["social_media_other"], datetime.now(UTC) + timedelta(hours=1)),
                       created_by="test")  # fmt: skip
        on_every_worker("http://www.tiktok.com/", 200)
        store(end_grant, number, by="test")
        on_every_worker("http://www.tiktok.com/", 403)

        on_every_worker("http://forum.example/", 200)
        store(add_block, host="forum.example", path_prefix=None, reason="a report", by="officer", now=datetime.now(UTC))
        on_every_worker("http://forum.example/", 403)

        on_every_worker("http://www.bbc.co.uk/", 200, bans.AMY)
        store(ban_person, username="amy.p", display_name="Amy", reason="test", created_by="head", now=datetime.now(UTC))
        on_every_worker("http://www.bbc.co.uk/", "You are on supervised-only access", bans.AMY)

        on_every_worker("http://news.example/", 200)
        policy.write_text(policy.read_text().replace("rules:\n", "rules:\n  - {id: closed, groups: [pupil], domains: "
                                                     "[news.example], action: block, reason: Closed today}\n", 1))
        on_every_worker("http://news.example/", 403)
    finally:
        for worker in workers:
            worker.stop()
