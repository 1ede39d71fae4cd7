"""What the endurance benches share (bench/soak.py, bench/faults.py, bench/sqlite_memory.py): a gateway with its own
store, a steady load in which every request has an id of its own, the tally of answers, the access log counted by
id, and the proxy's memory.

The load is plain HTTP keep-alive through the proxy, absolute-form (``GET http://www.bbc.co.uk/<run>/<n>``, as a
browser with a proxy sends), from an asyncio client in this process: request n is due at ``start + n / rate``;
connections take the due requests in turn, so the rate holds while the proxy keeps up; a request that starts
more than a second after it was due counts as late, and a load that falls behind catches up as fast as the proxy
answers, until its time is up. A request is never retried: one that fails counts as failed,
and its id is what the access log is checked against.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from gateway.store.engine import make_engine
from gateway.store.models.access_log import AccessLogEntry
from tests.support.mitmdump import Mitmdump

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = "www.bbc.co.uk"


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class Tally:
    """What the load sent and what came back, by request id."""

    run: str
    answered: dict[int, tuple[int, float]] = field(default_factory=dict)
    """id -> (status, monotonic time the answer arrived)."""
    failed: dict[int, tuple[str, float]] = field(default_factory=dict)
    """id -> (error, monotonic time it failed)."""
    late: int = 0
    slowest: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.answered) + len(self.failed)

    def statuses(self) -> Counter[int]:
        return Counter(status for status, _ in self.answered.values())

    def path(self, n: int) -> str:
        return f"/{self.run}/{n}"

    def summary(self) -> str:
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(self.statuses().items()))
        p99 = sorted(self.latencies)[int(len(self.latencies) * 0.99)] if self.latencies else 0.0
        errors = Counter(error for error, _ in self.failed.values())
        failed = f"; failed {len(self.failed)} ({', '.join(f'{e}: {c}' for e, c in errors.most_common(3))})" if errors else ""
        return (f"sent {self.sent}, answered {len(self.answered)} ({statuses or 'none'}){failed}; late {self.late}; "
                f"p99 {p99 * 1000:.0f} ms, slowest {self.slowest * 1000:.0f} ms")  # fmt: skip


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the proxy will close the connection), the body read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    closing = headers.get("connection") == "close"
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif status not in (204, 304):
        await reader.read()
        closing = True
    return status, closing


async def steady_load(
    port: int, run: str, *, rate: float, seconds: float, connections: int = 16, tally: Tally | None = None,
    host: str = HOST, stop: asyncio.Event | None = None,
) -> Tally:  # fmt: skip
    """Requests at `rate` per second for `seconds` (or until `stop` is set) through the proxy on `port`, each to its
    own path."""
    tally = tally or Tally(run)
    start = time.monotonic()
    deadline = start + seconds
    # A tally carried on from an earlier load goes on with the next ids.
    base = tally.sent
    numbers = iter(range(base, 10**12))

    async def connection() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while True:
            n = next(numbers)
            due = start + (n - base) / rate
            now = time.monotonic()
            # A load that fell behind stops at its deadline all the same, with what it could not send unsent.
            if due >= deadline or now >= deadline or (stop is not None and stop.is_set()):
                break
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > 1.0:
                tally.late += 1
            began = time.monotonic()
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
                assert reader is not None
                writer.write(f"GET http://{host}{tally.path(n)} HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\n\r\n".encode())
                status, closing = await asyncio.wait_for(_read_response(reader), 30)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
                tally.failed[n] = (type(e).__name__, time.monotonic())
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            finished = time.monotonic()
            tally.answered[n] = (status, finished)
            tally.latencies.append(finished - began)
            tally.slowest = max(tally.slowest, finished - began)
            if closing:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return tally


def capacity(port: int, workdir: Path, *, seconds: float = 10, connections: int = 16, host: str = HOST) -> float:
    """Keep-alive requests/s the proxy answers flat out (wrk, after a 2 s warm-up), to paths of their own run."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (or run scripts/bootstrap)")
    lua = workdir / "capacity.lua"
    lua.write_text(
        f'init = function(args) req = wrk.format("GET", "http://{host}/capacity/run", '
        f'{{["Host"] = "{host}", ["Accept"] = "text/html"}}) end\nrequest = function() return req end\n'
    )
    url = f"http://127.0.0.1:{port}/"
    subprocess.run([wrk, "-t1", f"-c{connections}", "-d2s", "-s", str(lua), url], capture_output=True, timeout=60)
    result = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(lua), url],
        capture_output=True, text=True, timeout=seconds + 60,
    )  # fmt: skip
    for line in result.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise SystemExit(f"wrk gave no rate:\n{result.stdout}{result.stderr}")


def logged_counts(db_url: str, run: str) -> Counter[str]:
    """Access-log rows per path of this run."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as c:
            paths = c.scalars(sa.select(AccessLogEntry.path).where(AccessLogEntry.path.startswith(f"/{run}/")))
            return Counter(paths)
    finally:
        engine.dispose()


@dataclass
class LogCheck:
    missing: list[int]
    duplicates: list[int]
    logged: int

    def summary(self) -> str:
        return (f"logged {self.logged}; missing {len(self.missing)}"
                f"{' (e.g. ' + ', '.join(map(str, self.missing[:5])) + ')' if self.missing else ''}; "
                f"duplicates {len(self.duplicates)}")  # fmt: skip


def check_log(db_url: str, tally: Tally, *, ids: list[int] | None = None, wait: float = 120) -> LogCheck:
    """Every answered request (or those of `ids`) logged exactly once: waits up to `wait` s for the writer."""
    expected = sorted(tally.answered) if ids is None else ids
    deadline = time.monotonic() + wait
    while True:
        counts = logged_counts(db_url, tally.run)
        missing = [n for n in expected if counts[tally.path(n)] == 0]
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(2)
    duplicates = [n for n in expected if counts[tally.path(n)] > 1]
    return LogCheck(missing, duplicates, sum(counts.values()))


def prepare_database(url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "db", "upgrade", "--db", url], cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"`gateway db upgrade --db {url}` failed:\n{result.stderr.strip()}")


def start_gateway(
    workdir: Path, origin: str, origin_ca: Path, db_url: str, policy: Path, *, extra: dict[str, str] | None = None,
    listen_port: int | None = None, confdir: Path | None = None,
) -> Mitmdump:  # fmt: skip
    """``mitmdump -s addons/gateway.py`` with its store at `db_url`, its spool in `workdir`, routed to the origin."""
    options = {
        "flow_detail": "0", "ssl_verify_upstream_trusted_ca": str(origin_ca), "gateway_policy": str(policy),
        "gateway_db": db_url, "gateway_spool": str(workdir / "spool"), **(extra or {}),
    }  # fmt: skip
    proxy = Mitmdump(
        ["addons/gateway.py"], options, workdir=workdir, origin=origin, startup_timeout=180, confdir=confdir,
        ready_line=r"policy .* loaded", extra_args=["--listen-port", str(listen_port)] if listen_port else (),
    )  # fmt: skip
    return proxy.start()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
