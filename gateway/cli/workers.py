"""`gateway run --workers N`: N proxy processes side by side, worker i on the first port + i, sharing one store, one
policy and one spool folder. A worker that dies (a crash, the kernel's OOM killer, a SIGKILL) is said so and started
again, so the devices hashed to it are back within a second or two; one that keeps dying at start stops the gateway
with its reason rather than flapping. A worker that exits by itself before it ever served (its port taken, its
metrics port taken, a part refusing its options) will not do better a second time: the gateway stops at once, saying
why in the worker's own last lines; one killed by a signal is restarted, whenever it dies. With several workers
each line a worker prints starts with its name."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO

import click

# A worker that dies sooner than this after starting has died "at start": it is restarted after a growing pause,
# and after QUICK_DEATHS of those in a row the gateway stops.
QUICK_DEATH_SECONDS = 10.0
QUICK_DEATHS = 5
MOST_PAUSE = 30.0
# A worker has served once its port has been listening this long: by then mitmproxy's start-up check (an error
# logged while starting ends the process) is long over.
SERVING_AFTER_SECONDS = 1.0
# Lines of a worker's output kept to say why it stopped.
LAST_LINES = 12


def _free(host: str, port: int) -> bool:
    """Whether a worker could listen on `port` (tried by binding, as it would)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def worker_ports(host: str, first: int, count: int, avoid: int) -> list[int]:
    """`first` and the next free ports after it, `avoid` (the console's) skipped: one for each worker. Raises
    ClickException if `first` is taken or too few are free."""
    if not _free(host, first):
        raise click.ClickException(f"port {first} on {host} is in use (choose --listen-port)")
    ports = [first]
    for port in range(first + 1, min(first + count + 100, 65536)):
        if len(ports) == count:
            break
        if port != avoid and _free(host, port):
            ports.append(port)
    if len(ports) < count:
        raise click.ClickException(f"only {len(ports)} free ports on {host} from {first} for {count} workers")
    return ports


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _relay(prefix: bytes, stream: IO[bytes], last: deque[str]) -> None:
    """Copy a worker's output to ours, each line after `prefix`, keeping its last lines."""
    out = sys.stdout.buffer
    for line in iter(stream.readline, b""):
        out.write(prefix + line)
        out.flush()
        last.append(line.decode("utf-8", "replace").rstrip())


class WorkerFailedToStart(click.ClickException):
    """A worker died before it ever served: what it said last, as the gateway's reason to stop."""


@dataclass
class Worker:
    number: int
    port: int
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None
    listening_since: float | None = None
    served: bool = False
    last: deque[str] = field(default_factory=lambda: deque(maxlen=LAST_LINES))
    relays: list[threading.Thread] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"worker {self.number}"


class ProxyWorkers:
    def __init__(self, commands: list[tuple[int, list[str]]], env: Mapping[str, str],
                 echo: Callable[[str], None] = click.echo, host: str = "127.0.0.1") -> None:  # fmt: skip
        self.workers = [Worker(n, port, command) for n, (port, command) in enumerate(commands)]
        # Unbuffered: a worker's lines reach us in the order it wrote them, its last error last.
        self.env = {**env, "PYTHONUNBUFFERED": "1"}
        self.host = host
        self.echo = echo
        self.named = len(self.workers) > 1

    def start(self) -> None:
        for worker in self.workers:
            self._start(worker)

    def _start(self, worker: Worker) -> None:
        worker.process = subprocess.Popen(worker.command, env=self.env, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT)  # fmt: skip
        assert worker.process.stdout is not None
        prefix = f"[{worker.name}] ".encode() if self.named else b""
        relay = threading.Thread(target=_relay, args=(prefix, worker.process.stdout, worker.last), daemon=True,
                                 name=f"{worker.name} output")  # fmt: skip
        relay.start()
        worker.relays.append(relay)
        worker.started = time.monotonic()
        worker.restart_at = None
        worker.listening_since = None

    def tend(self) -> None:
        """Restart workers that died, once their pause is over; raises ClickException for one that died before it
        ever served, or keeps dying at start."""
        now = time.monotonic()
        for worker in self.workers:
            assert worker.process is not None
            if worker.restart_at is not None:
                if now >= worker.restart_at:
                    self.echo(f"{worker.name} (port {worker.port}): restarting")
                    self._start(worker)
                continue
            code = worker.process.poll()
            if code is None:
                if not worker.served:
                    self._see_serving(worker, now)
                continue
            if not worker.served and code >= 0:
                # It ended itself before it served: it refused to start, and would refuse again.
                raise self._failed_to_start(worker, code)
            if now - worker.started < QUICK_DEATH_SECONDS:
                worker.quick_deaths += 1
            else:
                worker.quick_deaths = 0
            if worker.quick_deaths >= QUICK_DEATHS:
                raise click.ClickException(f"{worker.name} (port {worker.port}) died {QUICK_DEATHS} times in a row "
                                           f"just after starting ({describe_exit(code)}); see its output above")
            pause = min(2.0 ** worker.quick_deaths - 1, MOST_PAUSE)
            worker.restart_at = now + pause
            self.echo(f"{worker.name} (port {worker.port}) stopped ({describe_exit(code)}); the others carry on; "
                      f"restarting it{f' in {pause:.0f} s' if pause >= 1 else ''}")

    def _see_serving(self, worker: Worker, now: float) -> None:
        # Its port in use while it runs: the worker is listening (it was free when the worker was given it).
        if _free(self.host, worker.port):
            worker.listening_since = None
        elif worker.listening_since is None:
            worker.listening_since = now
        elif now - worker.listening_since >= SERVING_AFTER_SECONDS:
            worker.served = True

    def _failed_to_start(self, worker: Worker, code: int) -> WorkerFailedToStart:
        for relay in worker.relays:
            relay.join(5)  # its last lines, still in the pipe
        said = "\n".join(f"  {line}" for line in worker.last if line.strip()) or "  (it printed nothing)"
        return WorkerFailedToStart(f"{worker.name} (port {worker.port}) could not start ({describe_exit(code)}); "
                                   f"its last lines:\n{said}")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every worker cleanly (SIGINT: each flushes its access-log queue), killing any that hangs."""
        running = [w.process for w in self.workers if w.process is not None and w.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGINT)
        for process in running:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for worker in self.workers:
            for relay in worker.relays:
                relay.join(5)
