#!/usr/bin/env python3
"""N proxy workers against one, on the same machine, in the same run: `gateway run --workers N` scaling.

    .venv/bin/python bench/workers.py [--workers 2] [--cpu-per-worker [F]] [--quick] [--rounds 3] [--duration 5]
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
the workers spent per request (summed over all worker processes); then where the CPU went, in cores: each worker
(with any children), the load generators (wrk or curl, and this script reading curl's lines), the origin, and the
whole machine as /proc/stat counts it.

Unconstrained (the default), the load generator, the origin and the workers share the machine's cores: on a
machine with as many cores as workers the generator takes what the extra workers would need, so the ratio
understates the scaling. ``--cpu-per-worker F`` (root; F defaults to 0.5) puts each worker process in a CPU cgroup
of its own capped at F cores (cgroup v1 ``cpu.cfs_quota_us``, or v2 ``cpu.max``; bench/cpu_cap.py): one worker
then has F cores and N workers N x F, and with N x F at least 0.8 cores short of the machine's the load generator
and the origin are not what limits. A worker at about F cores, throttled in most scheduling periods, is limited by
its cap; the load generators' and the origin's cores beside it show they had room. The cgroups are removed at the
end, also when the run fails or is interrupted. The default run takes about five minutes; ``--quick`` about a
minute and a half.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench_origin import start_origin  # noqa: E402
from cpu_cap import CpuCap, CpuCapError, descendants, make_caps  # noqa: E402
from proxy_load import (  # noqa: E402
    SCENARIOS,
    SMALL_SCENARIOS,
    Load,
    Measurement,
    Scenario,
    cpu_seconds,
    load_tools_or_say,
    rounds,
    scenarios_argument,
    spread,
    stop_all,
)
from throughput import demo_policy, demo_store  # noqa: E402

from tests.support.mitmdump import GATEWAY_PROXY, Mitmdump, MitmdumpError  # noqa: E402

GOAL_PER_WORKER = 0.85
"""N workers / one worker >= 0.85 x N (issue 12)."""
DEFAULT_CPU_PER_WORKER = 0.5
"""Two capped workers on a 2-core machine leave a whole core to the load generator and the origin."""
LEFT_FOR_THE_REST = 0.8
"""Cores the load generator and the origin need beside the capped workers (they used up to 0.6 here)."""


@dataclass
class WorkerRun(Measurement):
    """A run, with where the CPU went meanwhile, in cores (CPU seconds per second of the run)."""

    worker_cores: tuple[float, ...] = ()
    load_cores: float = 0.0
    """wrk or curl, and this script reading curl's lines."""
    origin_cores: float = 0.0
    machine_cores: float = 0.0
    """Every process on the machine, as /proc/stat counts it."""
    throttled: tuple[float, ...] = ()
    """Per capped worker, the share of scheduling periods in which its cap stopped it."""


@dataclass
class Config:
    name: str
    ports: int
    """How many workers' ports the load is spread over."""
    runs: dict[str, list[WorkerRun]] = field(default_factory=dict)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="N (default: the cores)")
    parser.add_argument(
        "--cpu-per-worker", type=float, nargs="?", const=DEFAULT_CPU_PER_WORKER, metavar="F",
        help=f"cap each worker at F cores in a CPU cgroup of its own (root; F default {DEFAULT_CPU_PER_WORKER})",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="one round of 3 s runs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run")
    parser.add_argument("--scenarios", type=scenarios_argument(SCENARIOS), default=[SCENARIOS[n] for n in SMALL_SCENARIOS],
                        help=f"from {','.join(SCENARIOS)} (default {','.join(SMALL_SCENARIOS)})")  # fmt: skip
    parser.add_argument("--connections", type=int, default=16, help="connections in flight in all (default 16)")
    parser.add_argument("--clients", type=int, default=2, help="curl processes per port (default 2)")
    parser.add_argument("--host", default="www.bbc.co.uk", help="host in the requests (allowed by the demo policy)")
    parser.add_argument("--ut1", metavar="PATH", help="import the UT1 lists from PATH (default: the demo lists)")
    args = parser.parse_args()
    if args.workers < 2:
        parser.error("--workers must be at least 2 to compare with one")
    if args.cpu_per_worker is not None and not 0 < args.cpu_per_worker <= 1:
        parser.error("--cpu-per-worker must be more than 0 and at most 1 core")
    if args.quick:
        args.rounds, args.duration = 1, 3.0
    return args


def start_workers(args: argparse.Namespace, workdir: Path, origin: str, origin_ca: Path) -> list[Mitmdump]:
    policy = demo_policy(workdir / "policy", args.ut1)
    shared = demo_store(workdir / "store", policy)
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


@dataclass(frozen=True)
class Snapshot:
    """CPU seconds so far: each worker's (with its children), the load generators', the origin's, the machine's."""

    at: float
    workers: tuple[float, ...]
    load: float
    origin: float
    machine: float
    periods: tuple[tuple[int, int], ...]

    @classmethod
    def take(cls, pids: list[int], origin: int, caps: list[CpuCap]) -> Snapshot:
        # The load generators are this script's children that have ended (wrk and curl are waited for by the end of
        # each run; the workers and the origin run on), plus this script's own threads reading curl's lines.
        children, own = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
        busy = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return cls(
            at=time.monotonic(),
            workers=tuple(sum(cpu_seconds(p) or 0.0 for p in [pid, *descendants(pid)]) for pid in pids),
            load=children.ru_utime + children.ru_stime + own.ru_utime + own.ru_stime,
            # user, nice, system, irq, softirq, steal: not idle, not iowait.
            machine=(sum(busy[:3]) + sum(busy[5:8])) / os.sysconf("SC_CLK_TCK"),
            origin=cpu_seconds(origin) or 0.0,
            periods=tuple(cap.throttled() for cap in caps),
        )


def measure(load: Load, scenario: Scenario, workers: list[Mitmdump], ports: int, connections: int, duration: float,
            origin: int, caps: list[CpuCap]) -> WorkerRun:  # fmt: skip
    """One run with the load spread over the first `ports` workers' ports; the rates summed, the CPU of every
    worker counted."""
    pids = [w.process.pid for w in workers if w.process is not None]

    def one(i: int, share: int) -> Measurement:
        return load.run(scenario, workers[i].port, workers[i].ca_cert_path, connections=share, duration=duration)

    before = Snapshot.take(pids, origin, caps)
    results = spread(one, ports, connections)
    after = Snapshot.take(pids, origin, caps)
    wall = after.at - before.at
    # The load generators' start, curl's settling second and their stopping are outside the measured window but
    # inside these CPU readings: the CPU is taken per second of the whole (the load runs throughout), so the CPU per
    # request compares alike for one and several generators.
    seconds = max(m.seconds for m in results)
    workers_cpu = [b - a for a, b in zip(before.workers, after.workers, strict=True)]
    return WorkerRun(
        requests=sum(m.requests for m in results),
        seconds=seconds,
        non2xx=sum(m.non2xx for m in results),
        errors=sum(m.errors for m in results),
        p50_ms=statistics.median(m.p50_ms for m in results),
        p99_ms=max(m.p99_ms for m in results),
        cpu_seconds=sum(workers_cpu) * seconds / wall,
        problem="; ".join(m.problem for m in results if m.problem),
        worker_cores=tuple(c / wall for c in workers_cpu),
        load_cores=(after.load - before.load) / wall,
        origin_cores=(after.origin - before.origin) / wall,
        machine_cores=(after.machine - before.machine) / wall,
        throttled=tuple((t1 - t0) / (p1 - p0) if p1 > p0 else 0.0
                        for (p0, t0), (p1, t1) in zip(before.periods, after.periods, strict=True)),
    )  # fmt: skip


def describe(m: WorkerRun) -> str:
    cpu = f"   workers' cpu {m.cpu_us_per_request:6.0f} µs/req" if m.cpu_us_per_request is not None else ""
    flags = (f"  non-2xx/3xx: {m.non2xx}" if m.non2xx else "") + (f"  failed: {m.errors}" if m.errors else "")
    problem = f"  {m.problem}" if m.problem else ""
    cores = "+".join(f"{c:.2f}" for c in m.worker_cores)
    throttled = f" (throttled {'/'.join(f'{t:.0%}' for t in m.throttled)})" if m.throttled else ""
    where = f"   cores: workers {cores}{throttled}, load {m.load_cores:.2f}, origin {m.origin_cores:.2f}, " \
            f"machine {m.machine_cores:.2f}"
    return f"{m.rate:8.0f} req/s   p50 {m.p50_ms:6.1f} ms   p99 {m.p99_ms:6.1f} ms{cpu}{flags}{problem}{where}"


def report(configs: list[Config], scenarios: list[Scenario], workers: int, cap: float | None) -> None:
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
    print("\nwhere the CPU went, in cores (mean of the measured runs): each worker, the load generators (wrk or curl "
          "and this script), the origin, the whole machine")
    print(f"{'scenario':<10} {'':<10} {'workers':>{6 * workers}} {'throttled':>{5 * workers + 4}} {'load':>6} "
          f"{'origin':>6} {'machine':>8}")
    for scenario in scenarios:
        for config in configs:
            runs = config.runs.get(scenario.name, [])
            if not runs:
                continue
            cores = " ".join(f"{statistics.mean(m.worker_cores[i] for m in runs):5.2f}" for i in range(workers))
            throttled = " ".join(f"{statistics.mean(m.throttled[i] for m in runs):4.0%}"
                                 for i in range(len(runs[0].throttled))) or "-"  # fmt: skip
            print(f"{scenario.name:<10} {config.name:<10} {cores:>{6 * workers}} {throttled:>{5 * workers + 4}} "
                  f"{statistics.mean(m.load_cores for m in runs):6.2f} {statistics.mean(m.origin_cores for m in runs):6.2f} "
                  f"{statistics.mean(m.machine_cores for m in runs):8.2f}")  # fmt: skip
    cores = os.cpu_count() or 1
    if cap is None:
        print(f"\nmeasured with the load generator and the origin on the same {cores} cores as the workers, uncapped")
    else:
        print(f"\neach worker capped at {cap:g} cores: {one.name} {cap:g}, {many.name} {cap * workers:g}; "
              f"{cores - cap * workers:g} of the {cores} cores left for the load generators and the origin. A worker "
              "near its cap and throttled in most periods is what limited its rate")  # fmt: skip


def main() -> int:
    args = parse_args()
    tools = load_tools_or_say()
    if tools is None:
        return 1
    cores = os.cpu_count() or 1
    if args.cpu_per_worker is not None and args.cpu_per_worker * args.workers > cores - LEFT_FOR_THE_REST:
        print(f"NOTE: {args.workers} workers at {args.cpu_per_worker:g} cores leave less than {LEFT_FOR_THE_REST:g} of "
              f"the {cores} cores to the load generators and the origin, which may then be what limits")  # fmt: skip
    # A bench stopped by SIGTERM goes through its teardown too: workers stopped, cgroups removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    caps: list[CpuCap] = []
    if args.cpu_per_worker is not None:
        try:
            caps = make_caps("bench-workers", args.workers, args.cpu_per_worker)
        except CpuCapError as e:
            print(f"--cpu-per-worker: {e}", file=sys.stderr)
            return 1
    workdir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    configs = [Config("1 worker", 1), Config(f"{args.workers} workers", args.workers)]
    origin = None
    all_workers: list[Mitmdump] = []
    try:
        origin, origin_port, origin_ca = start_origin(workdir / "origin-ca", args.host, "www.gov.uk")
        all_workers.extend(start_workers(args, workdir, f"127.0.0.1:{origin_port}", origin_ca))
        for cap, worker in zip(caps, all_workers):  # no caps: unconstrained
            assert worker.process is not None
            cap.add(worker.process.pid)
        load = Load(workdir, args.scenarios, args.host, tools, clients=args.clients)
        capped = f", each capped at {args.cpu_per_worker:g} cores (CPU cgroups {caps[0].path}, ...)" if caps else ""
        print(f"{args.workers} gateway proxy workers (one store, one policy, one spool), ports "
              f"{', '.join(str(w.port) for w in all_workers)}{capped}; {args.connections} connections in flight in "
              f"all; {args.duration:g} s per run, {args.rounds} round(s) after a 1 s warm-up; requests for "
              f"{' and '.join(sorted({s.path for s in args.scenarios}))} on http(s)://{args.host}, routed to the origin at "
              f"127.0.0.1:{origin_port}", flush=True)  # fmt: skip

        origin_pid = origin.pid

        def run(scenario: Scenario, config: Config, duration: float, _measured: bool) -> WorkerRun:
            return measure(load, scenario, all_workers, config.ports, args.connections, duration, origin_pid, caps)

        rounds(configs, args.scenarios, run, rounds=args.rounds, duration=args.duration, warmup=1.0, describe=describe)
    finally:
        stop_all(all_workers, origin, workdir)
        for cap in caps:
            cap.remove()
    report(configs, args.scenarios, args.workers, args.cpu_per_worker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
