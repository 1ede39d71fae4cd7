#!/usr/bin/env python3
"""N proxy workers against one, on the same machine, in the same run: `gateway run --workers N` scaling.

    .venv/bin/python bench/workers.py [--workers 2] [--quick] [--rounds 3] [--duration 5]
        [--scenarios http,http-new,https,https-new] [--connections 16] [--clients 2] [--ut1 PATH]

Starts N `gateway proxy` processes as `gateway run --workers N` does: one SQLite store with the demo roster, one
policy (the demo policy, or with ``--ut1 PATH`` the UT1 lists imported), one spool folder, `gateway_worker` 0..N-1,
every request decided, identified and logged; all load tests/support/route_to_origin.py, so every upstream
connection goes to the local benchmark origin (bench/bench_origin.py, upstream TLS verification on).

- ``1 worker``: the whole load on worker 0's port (the other workers idle, as a machine with one proxy);
- ``N workers``: the same number of connections in flight, spread evenly over the N ports (one load generator
  per port, as the PAC file or the nftables hash spreads devices).

Scenarios (bench/proxy_load.py drives them): ``http`` plain HTTP keep-alive (wrk); ``http-new`` a new connection
per request (wrk, Connection: close); ``https`` HTTPS keep-alive tunnels with interception (curl); ``https-new`` a
new CONNECT and TLS handshake per request (curl).

Rounds alternate which configuration goes first. It prints every run, then per scenario the mean rate of each,
the ratio N/1 as the median of same-round ratios against the goal (issue 12: >= 0.85 x N), and the CPU seconds
the workers spent per request (summed over all worker processes). The load generator, the origin and the workers
share the machine's cores: on a machine with as many cores as workers the generator takes what the extra workers
would need, so the ratio understates the scaling; equal CPU per request in both columns shows the workers add no
cost of their own, and the rate would follow the cores. The default run takes about five minutes; ``--quick``
about a minute and a half.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench_origin import start_origin  # noqa: E402
from lean_master import SCENARIOS, Scenario  # noqa: E402
from proxy_load import WRK_LUA, Measurement, cpu_seconds, load_tools_or_say, run_curl, run_wrk  # noqa: E402
from throughput import policy_with_ut1, prepare_database, private_store  # noqa: E402

from tests.support.mitmdump import GATEWAY_PROXY, Mitmdump, MitmdumpError  # noqa: E402

GOAL_PER_WORKER = 0.85
"""N workers / one worker >= 0.85 x N (issue 12)."""
DEMO_POLICY = REPO_ROOT / "policies" / "default.yaml"
DEMO_ROSTER = REPO_ROOT / "policies" / "demo" / "roster.csv"


@dataclass
class Config:
    name: str
    ports: int
    """How many workers' ports the load is spread over."""
    runs: dict[str, list[Measurement]] = field(default_factory=dict)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="N (default: the cores)")
    parser.add_argument("--quick", action="store_true", help="one round of 3 s runs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"from {','.join(SCENARIOS)}")
    parser.add_argument("--connections", type=int, default=16, help="connections in flight in all (default 16)")
    parser.add_argument("--clients", type=int, default=2, help="curl processes per port (default 2)")
    parser.add_argument("--host", default="www.bbc.co.uk", help="host in the requests (allowed by the demo policy)")
    parser.add_argument("--ut1", metavar="PATH", help="import the UT1 lists from PATH (default: the demo lists)")
    args = parser.parse_args()
    if args.workers < 2:
        parser.error("--workers must be at least 2 to compare with one")
    if args.quick:
        args.rounds, args.duration = 1, 3.0
    unknown = [n for n in args.scenarios.split(",") if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    args.scenarios = [SCENARIOS[n] for n in args.scenarios.split(",")]
    return args


def start_workers(args: argparse.Namespace, workdir: Path, origin: str, origin_ca: Path) -> list[Mitmdump]:
    from gateway.cli.roster_cmd import import_demo_roster

    policy = policy_with_ut1(args.ut1, workdir / "ut1") if args.ut1 else DEMO_POLICY
    shared = private_store(workdir / "store") | {"gateway_policy": str(policy)}
    prepare_database(shared["gateway_db"])
    import_demo_roster(shared["gateway_db"], policy, DEMO_ROSTER)
    workers = []
    for n in range(args.workers):
        options = shared | {"gateway_worker": str(n), "ssl_verify_upstream_trusted_ca": str(origin_ca),
                            "gateway_reachable_internal": origin}  # fmt: skip
        worker = Mitmdump([], options, workdir=workdir / f"worker-{n}", origin=origin, startup_timeout=180,
                          program=GATEWAY_PROXY, confdir=workdir / "ca")  # fmt: skip
        try:
            workers.append(worker.start())
        except MitmdumpError as e:
            for started in workers:
                started.stop()
            raise SystemExit(f"worker {n} did not start:\n{e}") from None
    return workers


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def measure(args: argparse.Namespace, scenario: Scenario, workers: list[Mitmdump], pids: list[int],
            lua: dict[bool, Path], tools: tuple[str, str] | None, duration: float) -> Measurement:  # fmt: skip
    """One run with the load spread over `workers`' ports; the rates summed, the CPU of every worker (`pids`)
    counted."""
    results: list[Measurement] = []

    def load(worker: Mitmdump, connections: int) -> None:
        if scenario.curl is None:
            wrk = shutil.which("wrk")
            assert wrk is not None
            results.append(run_wrk(wrk, worker.port, lua[scenario.close], duration=duration,
                                   connections=connections, threads=1))  # fmt: skip
        else:
            assert tools is not None
            results.append(run_curl(tools, scenario.curl, worker.port, worker.ca_cert_path,
                                    f"https://{args.host}/bench", duration=duration, connections=connections,
                                    clients=min(args.clients, connections), settle=1.0))  # fmt: skip

    threads = [threading.Thread(target=load, args=(worker, connections))
               for worker, connections in zip(workers, split(args.connections, len(workers)))]  # fmt: skip
    before, started = sum(cpu_seconds(pid) or 0.0 for pid in pids), time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after, wall = sum(cpu_seconds(pid) or 0.0 for pid in pids), time.monotonic() - started
    # The load generators' start, curl's settling second and their stopping are outside the measured window but
    # inside this CPU reading: the CPU is taken per second of the whole (the load runs throughout), so the CPU per
    # request compares alike for one and several generators.
    seconds = max(m.seconds for m in results)
    requests = sum(m.requests for m in results)
    return Measurement(
        requests=requests,
        seconds=seconds,
        non2xx=sum(m.non2xx for m in results),
        errors=sum(m.errors for m in results),
        p50_ms=statistics.median(m.p50_ms for m in results),
        p99_ms=max(m.p99_ms for m in results),
        cpu_seconds=(after - before) * seconds / wall,
        problem="; ".join(m.problem for m in results if m.problem),
    )


def describe(m: Measurement) -> str:
    cpu = f"   workers' cpu {m.cpu_us_per_request:6.0f} µs/req" if m.cpu_us_per_request is not None else ""
    flags = (f"  non-2xx/3xx: {m.non2xx}" if m.non2xx else "") + (f"  failed: {m.errors}" if m.errors else "")
    problem = f"  {m.problem}" if m.problem else ""
    return f"{m.rate:8.0f} req/s   p50 {m.p50_ms:6.1f} ms   p99 {m.p99_ms:6.1f} ms{cpu}{flags}{problem}"


def report(configs: list[Config], scenarios: list[Scenario], workers: int) -> None:
    one, many = configs
    goal = GOAL_PER_WORKER * workers
    print(f"\nmean requests/s; ratio = median of same-round ratios {many.name} / {one.name}; workers' CPU µs per "
          "request")
    print(f"{'scenario':<10} {one.name:>14} {many.name:>14} {'ratio':>8} {'cpu 1':>10} {'cpu N':>10}   "
          f"goal >= {goal:.2f}x")
    for scenario in scenarios:
        a, b = one.runs.get(scenario.name, []), many.runs.get(scenario.name, [])
        if not a or not b:
            continue
        paired = [y.rate / x.rate for x, y in zip(a, b, strict=False) if x.rate]
        ratio = statistics.median(paired) if paired else 0.0
        cpu = [statistics.mean(m.cpu_us_per_request or 0.0 for m in runs) for runs in (a, b)]
        met = "met" if ratio >= goal else "NOT MET"
        rates = [statistics.mean(m.rate for m in runs) for runs in (a, b)]
        print(f"{scenario.name:<10} {rates[0]:14.0f} {rates[1]:14.0f} {ratio:7.2f}x {cpu[0]:8.0f}µs {cpu[1]:8.0f}µs   "
              f"{met}  ({scenario.title})")
    print(f"\nmeasured with the load generator and the origin on the same {os.cpu_count()} cores as the workers")


def main() -> int:
    args = parse_args()
    tools = load_tools_or_say()
    if tools is None:
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    configs = [Config("1 worker", 1), Config(f"{args.workers} workers", args.workers)]
    origin = None
    all_workers: list[Mitmdump] = []
    try:
        origin, origin_port, origin_ca = start_origin(workdir / "origin-ca", args.host, "www.gov.uk")
        all_workers.extend(start_workers(args, workdir, f"127.0.0.1:{origin_port}", origin_ca))
        pids = [w.process.pid for w in all_workers if w.process is not None]
        target = f"http://{args.host}/bench"
        lua = {False: workdir / "keepalive.lua", True: workdir / "close.lua"}
        lua[False].write_text(WRK_LUA.format(target=target, host=args.host))
        lua[True].write_text(WRK_LUA.replace('{{["Host"] = host}}', '{{["Host"] = host, ["Connection"] = "close"}}')
                             .format(target=target, host=args.host))  # fmt: skip
        print(f"{args.workers} gateway proxy workers (one store, one policy, one spool), ports "
              f"{', '.join(str(w.port) for w in all_workers)}; {args.connections} connections in flight in all; "
              f"{args.duration:g} s per run, {args.rounds} round(s) after a 1 s warm-up; requests for {target} "
              f"(https too), routed to the origin at 127.0.0.1:{origin_port}", flush=True)  # fmt: skip
        for scenario in args.scenarios:
            for config in configs:
                measure(args, scenario, all_workers[: config.ports], pids, lua, tools, 1.0)
        for round_no in range(1, args.rounds + 1):
            order = configs if round_no % 2 else configs[::-1]
            for scenario in args.scenarios:
                for config in order:
                    m = measure(args, scenario, all_workers[: config.ports], pids, lua, tools, args.duration)
                    config.runs.setdefault(scenario.name, []).append(m)
                    print(f"round {round_no}  {scenario.name:<10} {config.name:<10} {describe(m)}", flush=True)
    finally:
        for worker in all_workers:
            worker.stop()
        if origin is not None:
            origin.kill()
            origin.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    report(configs, args.scenarios, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
