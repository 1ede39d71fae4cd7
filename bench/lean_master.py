#!/usr/bin/env python3
"""The gateway's own Master (`gateway proxy`) against bare mitmdump, same origin, same load, in one run.

    .venv/bin/python bench/lean_master.py [--quick] [--rounds 3] [--duration 5]
        [--scenarios http,http-new,https,https-new] [--connections 16] [--clients 2] [--no-ut1]
        [--with-mitmdump-gateway]

Configurations, each its own process, all loading tests/support/route_to_origin.py (every upstream connection
goes to the local benchmark origin, bench/bench_origin.py, with upstream TLS verification on):

- ``bare``: mitmdump with no addon of ours (``flow_detail=0``: no line per flow);
- ``lean``: the gateway's Master with none of the gateway's parts (bench/lean_master_alone.py): what dropping
  mitmdump's other built-in addons is worth by itself;
- ``gateway``: ``gateway proxy`` as ``gateway run`` starts one worker: the demo policy with the UT1 lists imported
  (``--ut1``, default ../shared/data/ut1; ``--no-ut1`` for the demo lists only), the demo roster in a migrated
  SQLite store (identity sources running), every request logged to it;
- with ``--with-mitmdump-gateway``, ``mitmdump+gw``: ``mitmdump -s addons/gateway.py`` with the same options, as
  the gateway ran before it had its own Master.

Scenarios (bench/proxy_load.py drives them): ``http`` plain HTTP keep-alive (wrk, absolute-form requests);
``http-new`` the same with ``Connection: close`` (a new client connection per request); ``https`` HTTPS
keep-alive tunnels with interception (curl); ``https-new`` a new CONNECT and TLS handshake per request (curl).

Rounds alternate the configurations (each round starts from the next one), so drift in machine load falls on
all of them. For each scenario it prints every run, then the mean rate of each configuration, its ratio to bare
as the median of the ratios of runs measured in the same round, and proxy CPU µs per request; then the verdict
against the goal: gateway >= 1.2x bare mitmdump in all four scenarios (issue 12, "Benchmarks").
The default run (3 rounds of 5 s) takes about five minutes; ``--quick`` about a minute and a half.
"""

from __future__ import annotations

import argparse
import shutil
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
from proxy_load import WRK_LUA, CurlLoad, Measurement, load_tools_or_say, run_curl, run_wrk  # noqa: E402
from throughput import describe, policy_with_ut1, prepare_database, private_store  # noqa: E402

from tests.support.mitmdump import GATEWAY_PROXY, Mitmdump, MitmdumpError  # noqa: E402

GOAL = 1.2
"""gateway/bare in every scenario (issue 12)."""
LEAN_ALONE = (sys.executable, str(REPO_ROOT / "bench" / "lean_master_alone.py"))
DEMO_POLICY = REPO_ROOT / "policies" / "default.yaml"
DEMO_ROSTER = REPO_ROOT / "policies" / "demo" / "roster.csv"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    curl: CurlLoad | None = None
    """None: plain HTTP with wrk."""
    close: bool = False
    """wrk: a new connection for every request."""


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("http", "HTTP keep-alive requests/s (wrk)"),
        Scenario("http-new", "HTTP new connections/s, Connection: close (wrk)", close=True),
        Scenario("https", "HTTPS keep-alive requests/s, intercepted (curl)", CurlLoad()),
        Scenario("https-new", "HTTPS new CONNECT + TLS per request, intercepted (curl)",
                 CurlLoad(new_connections=True)),
    )
}


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
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"from {','.join(SCENARIOS)}")
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
    unknown = [n for n in args.scenarios.split(",") if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    args.scenarios = [SCENARIOS[n] for n in args.scenarios.split(",")]
    return args


def gateway_options(args: argparse.Namespace, workdir: Path, name: str) -> dict[str, str]:
    from gateway.cli.roster_cmd import import_demo_roster

    policy = DEMO_POLICY if args.no_ut1 else policy_with_ut1(args.ut1, workdir / name)
    options = private_store(workdir / name) | {"gateway_policy": str(policy)}
    prepare_database(options["gateway_db"])
    import_demo_roster(options["gateway_db"], policy, DEMO_ROSTER)
    return options


def build_configs(args: argparse.Namespace, workdir: Path) -> list[Config]:
    configs = [
        Config("bare", [], {"flow_detail": "0"}),
        Config("lean", [], {}, program=LEAN_ALONE),
        Config("gateway", [], gateway_options(args, workdir, "gateway"), program=GATEWAY_PROXY),
    ]
    if args.with_mitmdump_gateway:
        options = gateway_options(args, workdir, "mitmdump+gw") | {"flow_detail": "0"}
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


def measure(args: argparse.Namespace, scenario: Scenario, proxy: Mitmdump, lua: dict[bool, Path],
            tools: tuple[str, str] | None, duration: float, pid: int | None) -> Measurement:  # fmt: skip
    if scenario.curl is None:
        wrk = shutil.which("wrk")
        assert wrk is not None
        return run_wrk(wrk, proxy.port, lua[scenario.close], duration=duration, connections=args.connections,
                       threads=1, pid=pid)  # fmt: skip
    assert tools is not None
    return run_curl(tools, scenario.curl, proxy.port, proxy.ca_cert_path, f"https://{args.host}/bench",
                    duration=duration, connections=args.connections, clients=args.clients, settle=1.0,
                    pid=pid)  # fmt: skip


def config_runs(configs: list[Config], name: str, scenario: Scenario) -> list[Measurement]:
    return next((c.runs.get(scenario.name, []) for c in configs if c.name == name), [])


def report(configs: list[Config], scenarios: list[Scenario]) -> None:
    names = [c.name for c in configs]
    print("\nmean requests/s, ratio to bare as the median of same-round ratios; mean proxy CPU µs per request, "
          "ratio as bare's CPU per request over this one's")
    print(f"{'scenario':<10} " + " ".join(f"{n:>20}" for n in names))
    verdicts = []
    for scenario in scenarios:
        bare = configs[0].runs.get(scenario.name, [])
        cells, cpus = [], []
        ratios: dict[str, float] = {}
        bare_cpu = [m.cpu_us_per_request for m in bare if m.cpu_us_per_request is not None]
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
            cpu = [m.cpu_us_per_request for m in runs if m.cpu_us_per_request is not None]
            # Bare's CPU per request over this one's: what a CPU-bound proxy's throughput ratio would be on an idle
            # machine, and steadier than requests/s when other processes take turns on the cores.
            by_cpu = ""
            if cpu and bare_cpu and config.name != "bare":
                by_cpu = f" {statistics.mean(bare_cpu) / statistics.mean(cpu):5.2f}x"
            cpus.append((f"{statistics.mean(cpu):6.0f} µs{by_cpu}" if cpu else "-").rjust(20))
        print(f"{scenario.name:<10} " + " ".join(cells) + "  req/s")
        print(f"{'':<10} " + " ".join(cpus) + "  cpu/req")
        if "gateway" in ratios:
            met = "met" if ratios["gateway"] >= GOAL else "NOT MET"
            gateway_runs = config_runs(configs, "gateway", scenario)
            gateway_cpu = [m.cpu_us_per_request for m in gateway_runs if m.cpu_us_per_request]
            cpu_ratio = f", by CPU per request {statistics.mean(bare_cpu) / statistics.mean(gateway_cpu):.2f}x" if (
                bare_cpu and gateway_cpu) else ""
            verdicts.append(f"  {scenario.name:<10} gateway/bare {ratios['gateway']:.2f}x{cpu_ratio}  goal >= {GOAL}x: "
                            f"{met}  ({scenario.title})")  # fmt: skip
    if verdicts:
        print("\ngateway proxy (one worker, full policy, identity, logging) against bare mitmdump")
        print("\n".join(verdicts))


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
        target = f"http://{args.host}/bench"
        lua = {False: workdir / "keepalive.lua", True: workdir / "close.lua"}
        lua[False].write_text(WRK_LUA.format(target=target, host=args.host))
        lua[True].write_text(WRK_LUA.replace('{{["Host"] = host}}', '{{["Host"] = host, ["Connection"] = "close"}}')
                             .format(target=target, host=args.host))  # fmt: skip
        print(f"{args.connections} connections in flight (curl: {args.clients} processes); {args.duration:g} s per "
              f"run, {args.rounds} round(s), after a 1 s warm-up of each; requests for {target} (https too), "
              f"routed to the origin at 127.0.0.1:{origin_port}")  # fmt: skip
        for config in configs:
            assert config.proxy is not None
            print(f"  {config.name:<12} {' '.join(config.proxy.command[:6])} ...")
        for scenario in args.scenarios:
            for config in configs:
                assert config.proxy is not None
                measure(args, scenario, config.proxy, lua, tools, 1.0, None)
        for round_no in range(1, args.rounds + 1):
            shift = (round_no - 1) % len(configs)
            for scenario in args.scenarios:
                for config in configs[shift:] + configs[:shift]:
                    assert config.proxy is not None and config.proxy.process is not None
                    m = measure(args, scenario, config.proxy, lua, tools, args.duration, config.proxy.process.pid)
                    config.runs.setdefault(scenario.name, []).append(m)
                    print(f"round {round_no}  {scenario.name:<10} {config.name:<12} {describe(m)}", flush=True)
    finally:
        for config in configs:
            if config.proxy is not None:
                config.proxy.stop()
        if origin is not None:
            origin.kill()
            origin.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    report(configs, args.scenarios)
    return 0


if __name__ == "__main__":
    sys.exit(main())
