#!/usr/bin/env python3
"""The gateway's own Master (`gateway proxy`) against bare mitmdump, same origin, same load, in one run.

    .venv/bin/python bench/lean_master.py [--quick] [--rounds 3] [--duration 5]
        [--scenarios http,http-new,https,https-new,http-page,https-page] [--connections 16] [--clients 2] [--no-ut1]
        [--with-mitmdump-gateway]

Configurations, each its own process, all loading tests/support/route_to_origin.py (every upstream connection
goes to the local benchmark origin, bench/bench_origin.py, with upstream TLS verification on):

- ``bare``: mitmdump with no addon of ours (``flow_detail=0``: no line per flow);
- ``lean``: the gateway's Master with none of the gateway's parts (bench/lean_master_alone.py): what dropping
  mitmdump's other built-in addons is worth by itself;
- ``gateway``: ``gateway proxy`` as ``gateway run`` starts one worker: the demo policy with the UT1 lists imported
  (``--ut1``, default ../shared/data/ut1; ``--no-ut1`` for the demo lists only), the demo roster in a migrated
  SQLite store (identity sources running), every request logged to it;
- ``no-content``: the same ``gateway proxy`` under the demo policy without its ``content:`` section (written to
  the run's folder): content analysis off, every response body streamed;
- with ``--with-mitmdump-gateway``, ``mitmdump+gw``: ``mitmdump -s addons/gateway.py`` with the same options, as
  the gateway ran before it had its own Master.

Scenarios (bench/proxy_load.py drives them): ``http`` plain HTTP keep-alive (wrk, absolute-form requests);
``http-new`` the same with ``Connection: close`` (a new client connection per request); ``https`` HTTPS
keep-alive tunnels with interception (curl); ``https-new`` a new CONNECT and TLS handshake per request (curl).
These four ask for ``/bench``, 13 bytes of ``text/plain``: a text type, so content analysis takes the body, but
the same bytes every time, so after the first it answers from its findings remembered by digest. Content analysis
reads a page only in ``http-page`` and ``https-page`` (keep-alive, HTTP and intercepted HTTPS): ``/page.html``, a
50 KB HTML page of lesson text that scores nothing, new on every response (bench/bench_origin.py), so every one
is decoded and analysed in full, the worst case for the analysis.

Rounds alternate the configurations (each round starts from the next one), so drift in machine load falls on
all of them. For each scenario it prints every run, then the mean rate of each configuration, its ratio to bare
as the median of the ratios of runs measured in the same round, and proxy CPU µs per request; then the verdict
against the goal, gateway >= 1.2x bare mitmdump in the four ``/bench`` scenarios (issue 12, "Benchmarks"); then
content analysis on against off (``gateway`` / ``no-content``) in each scenario, against issue 10's goal (>= 0.9x
on HTML pages) where a page is analysed. The default run (3 rounds of 5 s) takes about ten minutes; ``--quick``
about three.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench_origin import start_origin  # noqa: E402
from proxy_load import (  # noqa: E402
    PAGE_PATH,
    SCENARIOS,
    Load,
    Measurement,
    Scenario,
    load_tools_or_say,
    rounds,
    scenarios_argument,
    stop_all,
)
from throughput import demo_policy, demo_store, describe, without_section  # noqa: E402

from tests.support.mitmdump import GATEWAY_PROXY, Mitmdump, MitmdumpError  # noqa: E402

GOAL = 1.2
"""gateway/bare in every /bench scenario (issue 12)."""
CONTENT_GOAL = 0.9
"""Content analysis on/off on HTML pages (issue 10)."""
LEAN_ALONE = (sys.executable, str(REPO_ROOT / "bench" / "lean_master_alone.py"))


@dataclass
class Config:
    name: str
    scripts: list[str]
    options: dict[str, str]
    program: tuple[str, ...] | None = None
    proxy: Mitmdump | None = None
    runs: dict[str, list[Measurement]] = field(default_factory=dict)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round of 3 s runs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run")
    parser.add_argument("--scenarios", type=scenarios_argument(SCENARIOS), default=list(SCENARIOS.values()),
                        help=f"from {','.join(SCENARIOS)} (default all)")  # fmt: skip
    parser.add_argument("--connections", type=int, default=16, help="connections in flight (default 16)")
    parser.add_argument("--clients", type=int, default=2, help="curl processes sharing them (default 2)")
    parser.add_argument("--host", default="www.bbc.co.uk", help="host in the requests (allowed by the demo policy)")
    parser.add_argument("--ut1", default=str(REPO_ROOT.parent / "shared" / "data" / "ut1"), metavar="PATH")
    parser.add_argument("--no-ut1", action="store_true", help="the demo policy without the UT1 lists")
    parser.add_argument("--with-mitmdump-gateway", action="store_true",
                        help="also measure mitmdump -s addons/gateway.py with the gateway's options")  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 3.0
    return args


def build_configs(args: argparse.Namespace, workdir: Path) -> list[Config]:
    policy = demo_policy(workdir / "policy", None if args.no_ut1 else args.ut1)
    no_content = without_section(policy, "content", "no-content.yaml")
    configs = [
        Config("bare", [], {"flow_detail": "0"}),
        Config("lean", [], {}, program=LEAN_ALONE),
        Config("gateway", [], demo_store(workdir / "gateway", policy), program=GATEWAY_PROXY),
        Config("no-content", [], demo_store(workdir / "no-content", no_content), program=GATEWAY_PROXY),
    ]
    if args.with_mitmdump_gateway:
        options = demo_store(workdir / "mitmdump+gw", policy) | {"flow_detail": "0"}
        configs.append(Config("mitmdump+gw", ["addons/gateway.py"], options))
    return configs


def start(config: Config, workdir: Path, origin: str, origin_ca: Path) -> None:
    options = {"ssl_verify_upstream_trusted_ca": str(origin_ca)}
    if config.name not in ("bare", "lean"):
        # The gateway refuses loopback destinations; the benchmark's origin is the one it may reach.
        options["gateway_reachable_internal"] = origin
    options.update(config.options)
    extra = {"program": config.program} if config.program else {}
    proxy = Mitmdump(config.scripts, options, workdir=workdir / config.name, origin=origin, startup_timeout=180,
                     **extra)  # fmt: skip
    try:
        config.proxy = proxy.start()
    except MitmdumpError as e:
        print(f"{config.name}: did not start, leaving it out.\n{e}", file=sys.stderr)


def config_runs(configs: list[Config], name: str, scenario: Scenario) -> list[Measurement]:
    return next((c.runs.get(scenario.name, []) for c in configs if c.name == name), [])


def mean_cpu(runs: list[Measurement]) -> float | None:
    cpu = [m.cpu_us_per_request for m in runs if m.cpu_us_per_request is not None]
    return statistics.mean(cpu) if cpu else None


def compared(top: list[Measurement], bottom: list[Measurement]) -> str:
    """top/bottom as the median of same-round ratios of rates, and as bottom's CPU per request over top's."""
    paired = [t.rate / b.rate for t, b in zip(top, bottom, strict=False) if b.rate]
    if not paired:
        return "not measured"
    top_cpu, bottom_cpu = mean_cpu(top), mean_cpu(bottom)
    by_cpu = f", by CPU per request {bottom_cpu / top_cpu:.2f}x" if top_cpu and bottom_cpu else ""
    return f"{statistics.median(paired):.2f}x{by_cpu}"


def report(configs: list[Config], scenarios: list[Scenario]) -> None:
    names = [c.name for c in configs]
    print("\nmean requests/s, ratio to bare as the median of same-round ratios; mean proxy CPU µs per request, "
          "ratio as bare's CPU per request over this one's")
    print(f"{'scenario':<10} " + " ".join(f"{n:>20}" for n in names))
    verdicts, content = [], []
    for scenario in scenarios:
        bare = configs[0].runs.get(scenario.name, [])
        cells, cpus = [], []
        ratios: dict[str, float] = {}
        bare_cpu = mean_cpu(bare)
        for config in configs:
            runs = config.runs.get(scenario.name, [])
            if not runs:
                cells.append("-".rjust(20))
                cpus.append("-".rjust(20))
                continue
            rate = statistics.mean(m.rate for m in runs)
            paired = [m.rate / b.rate for m, b in zip(runs, bare, strict=False) if b.rate]
            if config.name != "bare" and paired:
                ratios[config.name] = statistics.median(paired)
            ratio = f" {ratios[config.name]:5.2f}x" if config.name in ratios else ""
            cells.append(f"{rate:8.0f}{ratio}".rjust(20))
            cpu = mean_cpu(runs)
            # Bare's CPU per request over this one's: what a CPU-bound proxy's throughput ratio would be on an idle
            # machine, and steadier than requests/s when other processes take turns on the cores.
            by_cpu = f" {bare_cpu / cpu:5.2f}x" if cpu and bare_cpu and config.name != "bare" else ""
            cpus.append((f"{cpu:6.0f} µs{by_cpu}" if cpu else "-").rjust(20))
        print(f"{scenario.name:<10} " + " ".join(cells) + "  req/s")
        print(f"{'':<10} " + " ".join(cpus) + "  cpu/req")
        if "gateway" in ratios and scenario.path != PAGE_PATH:
            met = "met" if ratios["gateway"] >= GOAL else "NOT MET"
            verdicts.append(f"  {scenario.name:<10} gateway/bare {compared(config_runs(configs, 'gateway', scenario), bare)}"
                            f"  goal >= {GOAL}x: {met}  ({scenario.title})")  # fmt: skip
        on, off = config_runs(configs, "gateway", scenario), config_runs(configs, "no-content", scenario)
        if on and off:
            paired = [a.rate / b.rate for a, b in zip(on, off, strict=False) if b.rate]
            goal = (f"  goal >= {CONTENT_GOAL}x: {'met' if statistics.median(paired) >= CONTENT_GOAL else 'NOT MET'}"
                    if scenario.path == PAGE_PATH and paired else "  (13 bytes, the same each time: no page to read)")
            content.append(f"  {scenario.name:<10} on/off {compared(on, off)}{goal}")
    if verdicts:
        print("\ngateway proxy (one worker, full policy, identity, logging) against bare mitmdump")
        print("\n".join(verdicts))
    if content:
        print(f"\ncontent analysis on (gateway) against off (no-content), same run; in the -page scenarios every "
              f"response is a new 50 KB HTML page ({PAGE_PATH}), analysed in full")
        print("\n".join(content))


def main() -> int:
    args = parse_args()
    tools = load_tools_or_say()
    if tools is None:
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="bench-lean-master-"))
    configs: list[Config] = []
    origin = None
    try:
        configs = build_configs(args, workdir)
        origin, origin_port, origin_ca = start_origin(workdir / "origin-ca", args.host, "www.gov.uk")
        for config in configs:
            start(config, workdir, f"127.0.0.1:{origin_port}", origin_ca)
        configs = [c for c in configs if c.proxy is not None]
        if not configs or configs[0].name != "bare":
            return 1
        load = Load(workdir, args.scenarios, args.host, tools, clients=args.clients)
        print(f"{args.connections} connections in flight (curl: {args.clients} processes); {args.duration:g} s per "
              f"run, {args.rounds} round(s), after a 1 s warm-up of each; requests for http(s)://{args.host}/bench "
              f"and, in the -page scenarios, {PAGE_PATH}, routed to the origin at 127.0.0.1:{origin_port}")  # fmt: skip
        if any(s.path == PAGE_PATH for s in args.scenarios):
            print(f"  {PAGE_PATH}: a 50 KB text/html page of lesson text, new on every response: content analysis "
                  "reads each one in full; /bench: 13 bytes of text/plain, the same each time, whose finding the "
                  "gateway remembers")  # fmt: skip
        for config in configs:
            assert config.proxy is not None
            print(f"  {config.name:<12} {' '.join(config.proxy.command[:6])} ...")

        def run(scenario: Scenario, config: Config, duration: float, measured: bool) -> Measurement:
            assert config.proxy is not None and config.proxy.process is not None
            return load.run(scenario, config.proxy.port, config.proxy.ca_cert_path, connections=args.connections,
                            duration=duration, pid=config.proxy.process.pid if measured else None)  # fmt: skip

        rounds(configs, args.scenarios, run, rounds=args.rounds, duration=args.duration, warmup=1.0, describe=describe)
    finally:
        stop_all((c.proxy for c in configs), origin, workdir)
    report(configs, args.scenarios)
    return 0


if __name__ == "__main__":
    sys.exit(main())
