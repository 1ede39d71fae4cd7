"""`gateway run --workers N`'s supervision of its proxy processes, with real processes: the ports each worker
gets, a worker that keeps dying at start stopping the gateway with its reason, and one that dies after running
restarted at once."""

from __future__ import annotations

import socket
import sys
import time

import click
import pytest

from gateway.cli import workers as workers_module
from gateway.cli.workers import ProxyWorkers, worker_ports
from tests.support.ports import free_port


def test_worker_ports_skip_the_consoles_and_any_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        first = taken - 2
        ports = worker_ports("127.0.0.1", first, 3, avoid=first + 1)
        # Usually [first, first + 3, first + 4]: the machine's other programs may hold some of those.
        assert ports[0] == first and len(ports) == 3 and ports == sorted(set(ports))
        assert first + 1 not in ports and taken not in ports
        with pytest.raises(click.ClickException, match=f"port {taken} on 127.0.0.1 is in use"):
            worker_ports("127.0.0.1", taken, 2, avoid=0)


def test_a_worker_that_keeps_dying_at_start_stops_the_gateway_with_its_reason(monkeypatch) -> None:
    monkeypatch.setattr(workers_module, "MOST_PAUSE", 0.0)
    said: list[str] = []
    pool = ProxyWorkers([(free_port(), [sys.executable, "-c", "raise SystemExit(3)"])], {}, echo=said.append)
    pool.start()
    deadline = time.monotonic() + 60
    with pytest.raises(click.ClickException, match="worker 0 .* died 5 times in a row just after starting "
                                                   r"\(exit status 3\)"):  # fmt: skip
        while time.monotonic() < deadline:
            pool.tend()
            time.sleep(0.05)
    assert said.count("worker 0 (port %d): restarting" % pool.workers[0].port) == 4
    pool.stop()


def test_a_worker_that_dies_after_running_is_restarted_at_once(monkeypatch) -> None:
    monkeypatch.setattr(workers_module, "QUICK_DEATH_SECONDS", 0.5)
    said: list[str] = []
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    pool = ProxyWorkers([(free_port(), sleeper), (free_port(), sleeper)], {}, echo=said.append)
    pool.start()
    try:
        time.sleep(1.0)
        victim = pool.workers[1].process
        assert victim is not None
        victim.kill()
        victim.wait()
        pool.tend()
        assert said == [f"worker 1 (port {pool.workers[1].port}) stopped (killed by SIGKILL); the others carry on; "
                        "restarting it"]  # fmt: skip
        pool.tend()
        assert pool.workers[1].process is not victim and pool.workers[1].process.poll() is None
        assert pool.workers[0].process is not None and pool.workers[0].process.poll() is None
    finally:
        pool.stop(timeout=5)
