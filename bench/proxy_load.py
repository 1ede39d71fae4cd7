"""Load through a proxy for a bounded time, and what it measured: wrk for plain HTTP, curl for HTTPS and HTTP/2.

wrk cannot speak TLS through a proxy, so HTTPS is driven by curl: compiled, one event loop per process, each
process running up to ``--parallel-max`` transfers through the proxy (``-x``) from an endless URL glob, and
printing one line per finished transfer (``-w``), line-buffered (``stdbuf -oL``) so each line is timestamped
as it arrives. Only lines that arrive after a settling time count, and the proxy's CPU is read at the same two
instants, so connection set-up at the start of a run and the kill at its end stay out of the figures.

- HTTPS keep-alive: ``--http1.1``; curl opens one CONNECT tunnel and TLS session per parallel slot and sends
  request after request in it.
- HTTPS new connections: the same with ``Connection: close`` in each request, so the proxy closes the tunnel
  after each response and every request pays for a CONNECT, a TLS handshake with the proxy, and the proxy's
  own upstream connection and handshake (curl counts ``num_connects`` per transfer; the figure shows it).
- HTTP/2: ``--http2``; each curl process opens one tunnel and multiplexes its parallel transfers as h2 streams
  on it, as a browser does.

And what every proxy bench does around the load: ``rounds`` measures the configurations alternately and keeps each
run, ``spread`` shares one load over several proxy ports at once, ``stop_all`` tears a run down.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, Protocol

from tests.support.mitmdump import die_with_parent


@dataclass
class Measurement:
    requests: int
    seconds: float
    non2xx: int
    errors: int
    p50_ms: float
    p99_ms: float
    cpu_seconds: float | None = None
    connects: int | None = None
    """New connections the client opened (curl only)."""
    client_cpu_seconds: float | None = None
    http_versions: list[str] | None = None
    """The HTTP versions the client spoke with the proxy (curl only): shows what was negotiated in the tunnel."""
    problem: str = ""
    """Why the run measured nothing, when it did not."""

    @property
    def cpu_us_per_request(self) -> float | None:
        return self.cpu_seconds / self.requests * 1e6 if self.cpu_seconds is not None and self.requests else None

    @property
    def client_cpu_us_per_request(self) -> float | None:
        if self.client_cpu_seconds is None or not self.requests:
            return None
        return self.client_cpu_seconds / self.requests * 1e6

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (all its threads), or None off Linux or once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_total(pids: list[int]) -> float | None:
    readings = [cpu_seconds(pid) for pid in pids]
    return None if any(r is None for r in readings) else sum(readings)  # type: ignore[misc]


def _difference(before: float | None, after: float | None) -> float | None:
    return after - before if before is not None and after is not None else None


# -- wrk: plain HTTP ---------------------------------------------------------------------------------

WRK_LUA = """\
-- wrk through an HTTP proxy: wrk connects to the proxy, requests carry the absolute URL.
local target = "{target}"
local host = "{host}"

init = function(args)
  req = wrk.format("GET", target, {{["Host"] = host{close}}})
end

request = function()
  return req
end

done = function(summary, latency, requests)
  io.write(string.format(
    "WRK_JSON {{\\"requests\\": %.0f, \\"duration_us\\": %.0f, \\"non2xx\\": %.0f, \\"connect\\": %.0f, " ..
    "\\"read\\": %.0f, \\"write\\": %.0f, \\"timeout\\": %.0f, \\"p50_us\\": %.0f, \\"p99_us\\": %.0f}}\\n",
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def write_wrk_script(path: Path, target: str, host: str, *, close: bool = False) -> Path:
    """``close``: every request asks for ``Connection: close``, and wrk opens a new connection when the proxy closes
    one after its response."""
    path.write_text(WRK_LUA.format(target=target, host=host, close=', ["Connection"] = "close"' if close else ""))
    return path


def run_wrk(
    wrk: str, proxy_port: int, lua: Path, *, duration: float, connections: int, threads: int, pid: int | None = None
) -> Measurement:
    command = [
        wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
        "-s", str(lua), f"http://127.0.0.1:{proxy_port}/",
    ]  # fmt: skip
    cpu_before = cpu_seconds(pid) if pid is not None else None
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    cpu_after = cpu_seconds(pid) if pid is not None else None
    for line in result.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            data = json.loads(line.removeprefix("WRK_JSON "))
            return Measurement(
                requests=int(data["requests"] - data["non2xx"]),
                seconds=data["duration_us"] / 1e6,
                non2xx=int(data["non2xx"]),
                errors=int(data["connect"] + data["read"] + data["write"] + data["timeout"]),
                p50_ms=data["p50_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                cpu_seconds=_difference(cpu_before, cpu_after),
            )
    raise SystemExit(f"wrk gave no result (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")


# -- curl: HTTPS and HTTP/2 ------------------------------------------------------------------------------

CURL_FORMAT = "%{http_code} %{num_connects} %{time_total} %{http_version}\\n"
URL_GLOB = "?[1-1000000000]"
"""Appended to the URL: curl expands a glob lazily, so this is an endless supply of transfers."""


@dataclass(frozen=True)
class CurlLoad:
    """How curl loads the proxy in one HTTPS scenario."""

    http2: bool = False
    new_connections: bool = False

    def arguments(self) -> list[str]:
        if self.http2:
            return ["--http2"]
        return ["--http1.1", *(["-H", "Connection: close"] if self.new_connections else [])]


def find_curl_tools() -> tuple[str, str] | None:
    """curl and stdbuf (coreutils), or None when either is missing."""
    curl, stdbuf = shutil.which("curl"), shutil.which("stdbuf")
    return (curl, stdbuf) if curl and stdbuf else None


def load_tools_or_say() -> tuple[str, str] | None:
    """curl and stdbuf when wrk, curl and stdbuf are all installed; otherwise None, having said what to install."""
    tools = find_curl_tools()
    if shutil.which("wrk") is None or tools is None:
        print("needs wrk, curl and stdbuf: apt-get install wrk curl coreutils (or run scripts/bootstrap)",
              file=sys.stderr)  # fmt: skip
        return None
    return tools


class _Lines(threading.Thread):
    """Reads one curl's result lines, keeping each line's arrival time."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.process = process
        self.lines: list[tuple[float, str]] = []

    def run(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line))


def run_curl(
    tools: tuple[str, str], load: CurlLoad, proxy_port: int, ca: Path, url: str, *, duration: float,
    connections: int, clients: int, settle: float, pid: int | None = None, glob: str = URL_GLOB,
) -> Measurement:  # fmt: skip
    """``clients`` curl processes with ``connections`` transfers in flight in all, for ``settle + duration`` s.
    ``glob`` is appended to ``url``; a URL that carries its own endless glob passes ""."""
    curl, stdbuf = tools
    processes = []
    for parallel in filter(None, split(connections, clients)):
        command = [
            stdbuf, "-oL", curl, "--silent", "--show-error", "--no-progress-meter", "--parallel",
            "--parallel-immediate", "--parallel-max", str(parallel), "--proxy", f"http://127.0.0.1:{proxy_port}",
            "--cacert", str(ca), "--max-time", "10", *load.arguments(), "--output", "/dev/null",
            "--write-out", CURL_FORMAT, url + glob,
        ]  # fmt: skip
        processes.append(subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=die_with_parent,
        ))  # fmt: skip
    readers = [_Lines(p) for p in processes]
    for reader in readers:
        reader.start()
    client_pids = [p.pid for p in processes]
    time.sleep(settle)
    started = time.monotonic()
    cpu_before, client_before = cpu_seconds(pid) if pid else None, _cpu_total(client_pids)
    time.sleep(duration)
    finished = time.monotonic()
    cpu_after, client_after = cpu_seconds(pid) if pid else None, _cpu_total(client_pids)
    for process in processes:
        process.send_signal(signal.SIGTERM)
    stderr = ""
    for process, reader in zip(processes, readers):
        try:
            _, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        reader.join(timeout=5)
        stderr += err
    counted = [line.split() for reader in readers for at, line in reader.lines if started <= at < finished]
    ok = [fields for fields in counted if len(fields) == 4 and fields[0].startswith(("2", "3"))]
    failed = [fields for fields in counted if len(fields) != 4 or fields[0] == "000"]
    times = sorted(float(fields[2]) for fields in ok) or [0.0]
    return Measurement(
        requests=len(ok),
        seconds=finished - started,
        non2xx=len(counted) - len(ok) - len(failed),
        errors=len(failed),
        p50_ms=statistics.median(times) * 1000,
        p99_ms=times[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
        cpu_seconds=_difference(cpu_before, cpu_after),
        connects=sum(int(fields[1]) for fields in ok if fields[1].isdigit()),
        http_versions=sorted({fields[3] for fields in ok}),
        client_cpu_seconds=_difference(client_before, client_after),
        problem="" if counted else f"curl finished no transfer in {duration:g}s: {stderr.strip()[-500:] or 'no error'}",
    )


# -- what every proxy bench does around the load -----------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One way of loading a proxy, as the proxy benches share them."""

    name: str
    title: str
    curl: CurlLoad | None = None
    """None: plain HTTP with wrk."""
    close: bool = False
    """wrk: a new connection for every request."""
    path: str = "/bench"


PAGE_PATH = "/page.html"
"""bench/bench_origin.py's lesson page, new on every response (see there)."""
SCENARIOS = {
    s.name: s
    for s in (
        Scenario("http", "HTTP keep-alive requests/s (wrk)"),
        Scenario("http-new", "HTTP new connections/s, Connection: close (wrk)", close=True),
        Scenario("https", "HTTPS keep-alive requests/s, intercepted (curl)", CurlLoad()),
        Scenario("https-new", "HTTPS new CONNECT + TLS per request, intercepted (curl)",
                 CurlLoad(new_connections=True)),
        Scenario("http-page", "HTTP keep-alive, a 50 KB HTML page new each time (wrk)", path=PAGE_PATH),
        Scenario("https-page", "HTTPS keep-alive, a 50 KB HTML page new each time, intercepted (curl)", CurlLoad(),
                 path=PAGE_PATH),
    )
}  # fmt: skip
SMALL_SCENARIOS = ["http", "http-new", "https", "https-new"]
"""The 13-byte answer: what the proxy itself costs per request and per connection."""


def scenarios_argument[S](table: Mapping[str, S]) -> Callable[[str], list[S]]:
    """An argparse ``type`` for ``--scenarios``: comma-separated names from ``table``."""

    def parse(value: str) -> list[S]:
        names = [n.strip() for n in value.split(",") if n.strip()]
        unknown = [n for n in names if n not in table]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"scenarios are {', '.join(table)}; not {', '.join(unknown) or value!r}")
        return [table[n] for n in names]

    return parse


class Load:
    """Runs a scenario against one proxy port for a while: wrk for plain HTTP, curl for HTTPS, asking for
    ``host`` and the scenario's path."""

    def __init__(self, folder: Path, scenarios: Iterable[Scenario], host: str, curl_tools: tuple[str, str] | None, *,
                 clients: int = 2, settle: float = 1.0) -> None:  # fmt: skip
        self.host = host
        self.curl_tools = curl_tools
        self.clients = clients
        self.settle = settle
        self.wrk = shutil.which("wrk")
        self.lua = {
            s: write_wrk_script(folder / f"wrk-{s.name}.lua", f"http://{host}{s.path}", host, close=s.close)
            for s in scenarios if s.curl is None
        }  # fmt: skip

    def run(self, scenario: Scenario, port: int, ca: Path, *, connections: int, duration: float,
            pid: int | None = None) -> Measurement:  # fmt: skip
        """``pid``: the proxy process whose CPU the measurement reads, if any."""
        if scenario.curl is None:
            assert self.wrk is not None
            return run_wrk(self.wrk, port, self.lua[scenario], duration=duration, connections=connections, threads=1,
                           pid=pid)  # fmt: skip
        assert self.curl_tools is not None
        return run_curl(self.curl_tools, scenario.curl, port, ca, f"https://{self.host}{scenario.path}",
                        duration=duration, connections=connections, clients=min(self.clients, connections),
                        settle=self.settle, pid=pid)  # fmt: skip


def split(total: int, parts: int) -> list[int]:
    """``total`` shared out as evenly as it goes over ``parts``."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def spread(load: Callable[[int, int], Measurement], ports: int, connections: int) -> list[Measurement]:
    """``load(i, share)`` for each of ``ports`` proxy ports at once, in threads, the connections in flight split
    between them (as the PAC file or the nftables hash spreads devices over workers): each port's measurement."""
    results: list[Measurement | None] = [None] * ports

    def one(i: int, share: int) -> None:
        results[i] = load(i, share)

    threads = [threading.Thread(target=one, args=(i, share)) for i, share in enumerate(split(connections, ports))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r for r in results if r is not None]


class Measured[M](Protocol):
    """A configuration as ``rounds`` sees it: its name and its runs by scenario name."""

    @property
    def name(self) -> str: ...

    @property
    def runs(self) -> dict[str, list[M]]: ...


def rounds[S, M, C: Measured[Any]](
    configs: Sequence[C], scenarios: Sequence[S], run: Callable[[S, C, float, bool], M], *, rounds: int,
    duration: float, warmup: float, describe: Callable[[M], str],
    scenario_name: Callable[[S], str] = attrgetter("name"),
) -> None:  # fmt: skip
    """Warms each configuration up in each scenario (``run(scenario, config, warmup, False)``), then measures them
    alternately (``run(..., duration, True)``): per round every scenario, per scenario every configuration, each
    round starting from the next configuration so that none always runs first after a switch and drift in the
    machine's load falls on all of them. Prints each run and keeps it in its configuration's ``runs``."""
    for scenario in scenarios:
        for config in configs:
            run(scenario, config, warmup, False)
    width = max(len(c.name) for c in configs)
    for round_no in range(1, rounds + 1):
        shift = (round_no - 1) % len(configs)
        for scenario in scenarios:
            name = scenario_name(scenario)
            for config in [*configs[shift:], *configs[:shift]]:
                m = run(scenario, config, duration, True)
                config.runs.setdefault(name, []).append(m)
                print(f"round {round_no}  {name:<10} {config.name:<{width}} {describe(m)}", flush=True)


class Stoppable(Protocol):
    def stop(self) -> object: ...


def stop_all(parts: Iterable[Stoppable | None], origin: subprocess.Popen[str] | None, workdir: Path | None) -> None:
    """A run's teardown, error or not: its proxies stopped, then its origin, then its folder removed (``None``
    where the bench still reads the folder afterwards)."""
    for part in parts:
        if part is not None:
            part.stop()
    if origin is not None:
        origin.kill()
        origin.wait()
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
