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


def listener(port: int, then: str = "time.sleep(60)") -> list[str]:
    """A stand-in worker: listens on `port` as a proxy worker does, then runs `then`."""
    return [sys.executable, "-c", f"import socket, sys, time; s = socket.socket(); "
            f"s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', {port})); s.listen(); "
            f"{then}"]  # fmt: skip


def tend_until_raised(pool: ProxyWorkers, seconds: float = 60.0) -> click.ClickException:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            pool.tend()
        except click.ClickException as exc:
            return exc
        time.sleep(0.05)
    raise AssertionError(f"tend() raised nothing in {seconds} s")


def test_a_worker_that_dies_before_it_ever_served_stops_the_gateway_at_once_in_its_own_words() -> None:
    said: list[str] = []
    port = free_port()
    failing = [sys.executable, "-c", "import sys; print('loading the policy'); "
               "sys.exit('gateway proxy: gateway_metrics_listen 127.0.0.1:9101: cannot listen there')"]  # fmt: skip
    pool = ProxyWorkers([(free_port(), listener(free_port())), (port, failing)], {}, echo=said.append)
    pool.start()
    started = time.monotonic()
    try:
        error = tend_until_raised(pool)
        assert time.monotonic() - started < 10, "at once, not after rounds of restarts"
        assert error.message == (f"worker 1 (port {port}) could not start (exit status 1); its last lines:\n"
                                 "  loading the policy\n"
                                 "  gateway proxy: gateway_metrics_listen 127.0.0.1:9101: cannot listen there")
        assert said == [], "never restarted"
    finally:
        pool.stop(timeout=5)
    assert all(w.process is not None and w.process.poll() is not None for w in pool.workers)


def test_a_worker_killed_before_it_served_is_restarted_not_taken_for_a_start_failure() -> None:
    """The OOM killer or a SIGKILL in its first second: nothing it said explains it, and a new one may well serve."""
    said: list[str] = []
    port = free_port()
    pool = ProxyWorkers([(port, listener(port))], {}, echo=said.append)
    pool.start()
    try:
        victim = pool.workers[0].process
        assert victim is not None
        victim.kill()
        victim.wait()
        pool.tend()
        assert said == [f"worker 0 (port {port}) stopped (killed by SIGKILL); the others carry on; restarting it in 1 s"]
    finally:
        pool.stop(timeout=5)


def test_a_worker_that_served_then_keeps_dying_at_restart_stops_the_gateway_after_a_few_tries(
        tmp_path, monkeypatch) -> None:  # fmt: skip
    """It served (its port listened), then died, and now cannot start again (a policy changed since): the others
    serve meanwhile, so it is given a few tries first."""
    monkeypatch.setattr(workers_module, "MOST_PAUSE", 0.0)
    said: list[str] = []
    port, marker = free_port(), tmp_path / "served"
    once = listener(port, f"p = {str(marker)!r}; import os; "
                          "sys.exit(3) if os.path.exists(p) else (open(p, 'w').close(), time.sleep(2.5))")
    pool = ProxyWorkers([(port, once)], {}, echo=said.append)
    pool.start()
    error = tend_until_raised(pool)
    assert "died 5 times in a row just after starting (exit status 3)" in error.message
    assert said[0] == f"worker 0 (port {port}) stopped (exit status 0); the others carry on; restarting it"
    assert said.count(f"worker 0 (port {port}): restarting") == 4
    pool.stop()


def test_a_worker_that_dies_after_serving_is_restarted_at_once(monkeypatch) -> None:
    monkeypatch.setattr(workers_module, "QUICK_DEATH_SECONDS", 0.5)
    said: list[str] = []
    ports = [free_port(), free_port()]
    pool = ProxyWorkers([(port, listener(port)) for port in ports], {}, echo=said.append)
    pool.start()
    try:
        deadline = time.monotonic() + 30
        while not all(w.served for w in pool.workers):
            assert time.monotonic() < deadline, "the stand-ins never listened"
            pool.tend()
            time.sleep(0.1)
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
