#!/usr/bin/env python3
"""Selective interception against intercepting everything: the gateway on an HTTPS mix of pass-through and
inspected hosts, both configurations in one run.

    .venv/bin/python bench/selective.py [--quick] [--rounds 3] [--duration 5] [--scenarios https,https-new]
        [--connections 16] [--clients 2] [--passed 4] [--inspected 1] [--runner mitmdump|gateway-proxy|both]
        [--with-bare] [--no-ut1] [--ut1 PATH]

Configurations, each its own process with the gateway (the demo policy, with the UT1 lists imported unless
``--no-ut1``; the demo roster in a migrated SQLite store; every request and connection logged), all loading
tests/support/route_to_origin.py (every upstream connection, passed through or not, goes to the local benchmark
origin, bench/bench_origin.py, with upstream TLS verification on):

- ``selective``: the demo policy as shipped: its ``interception.pass_through`` passes the education_trusted list
  (www.ixl.com among them) through undecrypted for pupils, which the benchmark's loopback clients are;
- ``intercept-all``: the same policy with the ``interception:`` section taken out: every host is intercepted.

``--runner`` picks the process: ``mitmdump -s addons/gateway.py`` (default), ``gateway proxy`` (the gateway's own
Master, what ``gateway run`` starts), or ``both`` (four configurations). ``--with-bare`` adds mitmdump with no
addon of ours, intercepting everything and passing the same host through (``ignore_hosts``): the same ratio for
mitmproxy alone, the ceiling the gateway's can be read against.

The load (bench/proxy_load.py's curl driver, HTTP/1.1): each curl's URL glob cycles through ``--passed`` requests
to the pass-through host www.ixl.com and ``--inspected`` to the intercepted www.bbc.co.uk (default 4 and 1: 80 %
and 20 % of requests), so both configurations get the same mix. The curl clients trust the origin's CA (for what
passes through) and the gateway's (for what is intercepted). Scenarios:

- ``https``: keep-alive tunnels, many requests per connection (requests/s);
- ``https-new``: ``Connection: close``, a new CONNECT and TLS handshake for every request (new connections/s).

Rounds alternate the configurations (each round starts from the next one) so drift in machine load falls on all
of them. It prints every run; then per scenario the mean rate, the ratio to intercept-all as the median of the
ratios of runs measured in the same round, and proxy CPU µs per request; the verdict against the goal
(selective >= 3x intercept-all in both, issue 12) with the same ratio by proxy CPU per request beside it (steadier
than rates on a busy machine, as long as the proxy is what limits); and, from each configuration's access log, the rows by host and
method, which show that the pass-through host really was passed through (CONNECT rows with bytes) in one and
intercepted (GET rows) in the other. The default run (3 rounds of 5 s) takes about three minutes per runner.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
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
from proxy_load import CurlLoad, Measurement, find_curl_tools, rounds, run_curl, stop_all  # noqa: E402
from throughput import demo_policy, demo_store, describe, without_section  # noqa: E402

from tests.support.mitmdump import GATEWAY_PROXY, Mitmdump, MitmdumpError  # noqa: E402

GOAL = 3.0
"""selective/intercept-all in both scenarios (issue 12)."""
PASSED_HOST = "www.ixl.com"
"""On the demo policy's education_trusted list, passed through for pupils."""
INSPECTED_HOST = "www.bbc.co.uk"
SCENARIOS = {
    "https": ("HTTPS keep-alive requests/s", CurlLoad()),
    "https-new": ("HTTPS new connections/s (CONNECT + TLS per request)", CurlLoad(new_connections=True)),
}
RUNNERS = {"mitmdump": "mitmdump -s addons/gateway.py", "gateway-proxy": "gateway proxy"}
BARE = "bare"


@dataclass
class Config:
    name: str
    runner: str
    policy: Path | None
    options: dict[str, str] = field(default_factory=dict)
    proxy: Mitmdump | None = None
    bundle: Path | None = None
    runs: dict[str, list[Measurement]] = field(default_factory=dict)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="one round of 3 s runs")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the configurations (default 3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run (default 5)")
    parser.add_argument("--scenarios", default="https,https-new", help="https, https-new (default both)")
    parser.add_argument("--connections", type=int, default=16, help="transfers in flight (default 16)")
    parser.add_argument("--clients", type=int, default=2, help="curl processes sharing them (default 2)")
    parser.add_argument("--passed", type=int, default=4, help="requests to the pass-through host per cycle (4)")
    parser.add_argument("--inspected", type=int, default=1, help="requests to the intercepted host per cycle (1)")
    parser.add_argument("--runner", choices=[*RUNNERS, "both"], default="mitmdump",
                        help="the proxy process: mitmdump -s addons/gateway.py, gateway proxy, or both")  # fmt: skip
    parser.add_argument("--with-bare", action="store_true",
                        help="also bare mitmdump intercepting everything, and passing the host through (ignore_hosts)")  # fmt: skip
    parser.add_argument("--ut1", default=str(REPO_ROOT.parent / "shared" / "data" / "ut1"), metavar="PATH",
                        help="UT1 folder or .tar.gz imported for the demo policy (default ../shared/data/ut1)")  # fmt: skip
    parser.add_argument("--no-ut1", action="store_true", help="the demo policy without the UT1 lists")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 3.0
    unknown = [n for n in args.scenarios.split(",") if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    if args.passed < 0 or args.inspected < 0 or args.passed + args.inspected == 0:
        parser.error("--passed and --inspected must be >= 0, not both 0")
    args.scenarios = args.scenarios.split(",")
    return args


def policies(args: argparse.Namespace, workdir: Path) -> tuple[Path, Path]:
    """The demo policy (UT1 imported beside it) and, in the same folder, a copy without its `interception:`."""
    selective = demo_policy(workdir, None if args.no_ut1 else args.ut1)
    return selective, without_section(selective, "interception", "intercept-all.yaml")


def build_configs(args: argparse.Namespace, workdir: Path) -> list[Config]:
    selective, intercept_all = policies(args, workdir)
    runners = list(RUNNERS) if args.runner == "both" else [args.runner]
    configs = []
    for runner in runners:
        suffix = "" if len(runners) == 1 else f"/{runner}"
        for name, policy in (("intercept-all", intercept_all), ("selective", selective)):
            config = Config(name + suffix, runner, policy)
            config.options = demo_store(workdir / config.name.replace("/", "-"), policy)
            configs.append(config)
    if args.with_bare:
        configs.append(Config(f"intercept-all/{BARE}", BARE, None))
        configs.append(Config(f"selective/{BARE}", BARE, None, {"ignore_hosts": PASSED_HOST.replace(".", r"\.")}))
    return configs


def start(config: Config, workdir: Path, origin: str, origin_ca: Path) -> None:
    options = {"ssl_verify_upstream_trusted_ca": str(origin_ca), **config.options}
    if config.runner != BARE:
        # The gateway refuses loopback destinations; the benchmark's origin is the one it may reach.
        options["gateway_reachable_internal"] = origin
    folder = workdir / config.name.replace("/", "-")
    if config.runner == BARE:
        proxy = Mitmdump([], options | {"flow_detail": "0"}, workdir=folder, origin=origin)
    elif config.runner == "mitmdump":
        proxy = Mitmdump(["addons/gateway.py"], options | {"flow_detail": "0"}, workdir=folder, origin=origin,
                         startup_timeout=180)  # fmt: skip
    else:
        proxy = Mitmdump([], options, workdir=folder, origin=origin, startup_timeout=180, program=GATEWAY_PROXY)
    try:
        config.proxy = proxy.start()
    except MitmdumpError as e:
        print(f"{config.name}: did not start, leaving it out.\n{e}", file=sys.stderr)
        return
    # curl trusts the origin's CA for what passes through and the gateway's for what it intercepts.
    config.bundle = folder / "trusted.pem"
    config.bundle.write_bytes(Path(proxy.ca_cert_path).read_bytes() + origin_ca.read_bytes())


def mix_url(args: argparse.Namespace) -> str:
    """An endless URL glob whose host cycles through the mix: curl iterates the last glob fastest, so the endless
    counter goes first, in the user part (which the origin ignores)."""
    hosts = [PASSED_HOST] * args.passed + [INSPECTED_HOST] * args.inspected
    return f"https://r[1-1000000000]@{{{','.join(hosts)}}}/bench"


def measure(args: argparse.Namespace, scenario: str, config: Config, tools: tuple[str, str], duration: float,
            pid: int | None) -> Measurement:  # fmt: skip
    assert config.proxy is not None and config.bundle is not None
    return run_curl(tools, SCENARIOS[scenario][1], config.proxy.port, config.bundle, mix_url(args),
                    duration=duration, connections=args.connections, clients=args.clients, settle=1.0, pid=pid,
                    glob="")  # fmt: skip


def logged(config: Config) -> list[tuple[str, str, int, int]]:
    """(host, method, rows, rows with relayed bytes) in the configuration's access log."""
    if "gateway_db" not in config.options:
        return []
    database = Path(config.options["gateway_db"].removeprefix("sqlite:///"))
    with sqlite3.connect(database) as db:
        return db.execute("SELECT host, method, COUNT(*), COUNT(bytes_down) FROM access_log GROUP BY host, method "
                          "ORDER BY host, method").fetchall()  # fmt: skip


def report(configs: list[Config], scenarios: list[str]) -> None:
    print("\nmean requests/s; ratio = median of same-round ratios to intercept-all (same runner); "
          "proxy CPU µs per request; new connections per request")  # fmt: skip
    print(f"{'scenario':<10} " + " ".join(f"{c.name:>28}" for c in configs))
    verdicts = []
    for scenario in scenarios:
        rates, cpus, connects = [], [], []
        for config in configs:
            runs = config.runs.get(scenario, [])
            base = next((c for c in configs if c.runner == config.runner and c.name.startswith("intercept-all")), config)
            paired = [m.rate / b.rate for m, b in zip(runs, base.runs.get(scenario, []), strict=False) if b.rate]
            if not runs:
                rates.append("-".rjust(28))
                cpus.append("-".rjust(28))
                connects.append("-".rjust(28))
                continue
            ratio = statistics.median(paired) if paired else None
            shown = f" {ratio:5.2f}x" if ratio is not None and config is not base else ""
            rates.append(f"{statistics.mean(m.rate for m in runs):8.0f}{shown}".rjust(28))
            cpu = [m.cpu_us_per_request for m in runs if m.cpu_us_per_request is not None]
            cpus.append((f"{statistics.mean(cpu):6.0f} µs" if cpu else "-").rjust(28))
            per = [m.connects / m.requests for m in runs if m.connects is not None and m.requests]
            connects.append((f"{statistics.mean(per):.2f}" if per else "-").rjust(28))
            if config is not base and ratio is not None:
                # A CPU-bound proxy's throughput is the inverse of its CPU per request, whatever else the cores do:
                # steadier than the rates on a busy machine.
                base_cpu = [m.cpu_us_per_request for m in base.runs.get(scenario, []) if m.cpu_us_per_request]
                by_cpu = f", by proxy CPU per request {statistics.mean(base_cpu) / statistics.mean(cpu):.2f}x" \
                    if cpu and base_cpu else ""
                met = "reference, no goal" if config.runner == BARE else \
                    f"goal >= {GOAL:g}x: {'met' if ratio >= GOAL else 'NOT MET'}"
                verdicts.append(f"  {scenario:<10} {config.name}/{base.name} {ratio:.2f}x{by_cpu}  {met}"
                                f"  ({SCENARIOS[scenario][0]})")  # fmt: skip
        print(f"{scenario:<10} " + " ".join(rates) + "  req/s")
        print(f"{'':<10} " + " ".join(cpus) + "  cpu/req")
        print(f"{'':<10} " + " ".join(connects) + "  connects/req")
    if verdicts:
        print("\nselective interception against intercepting everything, same mix, same run")
        print("\n".join(verdicts))


def measure_and_report(args: argparse.Namespace, tools: tuple[str, str], workdir: Path) -> int:
    configs: list[Config] = []
    origin = None
    try:
        configs = build_configs(args, workdir)
        origin, origin_port, origin_ca = start_origin(workdir / "origin-ca", INSPECTED_HOST, PASSED_HOST)
        for config in configs:
            start(config, workdir, f"127.0.0.1:{origin_port}", origin_ca)
        configs = [c for c in configs if c.proxy is not None]
        if not configs:
            return 1
        share = args.passed / (args.passed + args.inspected)
        print(f"{args.connections} transfers in flight ({args.clients} curl processes), HTTP/1.1; {args.duration:g} s "
              f"per run, {args.rounds} round(s) after a 1 s warm-up of each; the mix: {share:.0%} of requests to "
              f"{PASSED_HOST} (passed through by `selective`), {1 - share:.0%} to {INSPECTED_HOST} (intercepted by "
              f"both), routed to the origin at 127.0.0.1:{origin_port}")  # fmt: skip
        for config in configs:
            what = f"{RUNNERS[config.runner]}, {config.policy.name}" if config.policy else \
                f"bare mitmdump, {'ignore_hosts ' + config.options['ignore_hosts'] if config.options else 'intercepting'}"
            print(f"  {config.name:<26} {what}")

        def run(scenario: str, config: Config, duration: float, measured: bool) -> Measurement:
            assert config.proxy is not None and config.proxy.process is not None
            return measure(args, scenario, config, tools, duration, config.proxy.process.pid if measured else None)

        rounds(configs, args.scenarios, run, rounds=args.rounds, duration=args.duration, warmup=1.0, describe=describe,
               scenario_name=str)  # fmt: skip
    finally:
        # The folder stays: the access logs are read below (main removes it).
        stop_all((c.proxy for c in configs), origin, None)
    report(configs, args.scenarios)
    print("\naccess log rows by host and method (rows with relayed bytes: connections passed through)")
    for config in (c for c in configs if c.runner != BARE):
        counts = ", ".join(f"{host} {method} {rows}" + (f" ({relayed} relayed)" if relayed else "")
                           for host, method, rows, relayed in logged(config))  # fmt: skip
        print(f"  {config.name:<26} {counts}")
    return 0


def main() -> int:
    args = parse_args()
    tools = find_curl_tools()
    if tools is None:
        print("needs curl and stdbuf: apt-get install curl coreutils (or run scripts/bootstrap)", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="bench-selective-"))
    try:
        return measure_and_report(args, tools, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
