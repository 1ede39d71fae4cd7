#!/usr/bin/env python3
"""Proxy throughput: bare mitmdump against mitmdump with the gateway, same origin, same load, HTTP and HTTPS.

    .venv/bin/python bench/throughput.py [--quick] [--scenarios http,https,https-new,h2] [--duration 5]
        [--rounds 2] [--connections 16] [--clients 2] [--no-lazy]
        [--gateway-script addons/gateway.py ...] [--gateway-set gateway_policy=policies/default.yaml ...]
        [--extra-script PATH ...] [--extra-set KEY=VALUE ...] [--variant-script PATH ...]

What it does, in one run:

- starts the benchmark origin (bench/bench_origin.py) in its own process: one loopback port answering plain
  HTTP/1.1, HTTPS/1.1 and HTTP/2 with a fixed 13-byte body, with a certificate for the requested host signed by
  a throwaway CA that every proxy is told to trust (upstream verification stays on, as in production);
- starts one mitmdump per configuration: ``bare`` (no addon of ours); ``bare-lazy`` (bare with
  ``connection_strategy=lazy``, a reference for what connecting upstream lazily costs; ``--no-lazy`` leaves it
  out); ``gateway`` (the gateway scripts and ``--set`` options given here); with ``--extra-script`` or
  ``--extra-set``, ``gateway+extra`` (the gateway plus those); with ``--variant-script``, ``variant`` (those
  scripts instead of the gateway's, same options: e.g. ``bench/gateway_without_access_log.py`` for the access
  log's cost);
- drives each through its proxy port in each scenario (bench/proxy_load.py says how):

  - ``http``: plain HTTP keep-alive, ``wrk`` sending absolute-form requests (``GET http://www.bbc.co.uk/bench``),
    as a browser configured with an HTTP proxy does;
  - ``https``: HTTPS with keep-alive tunnels (one CONNECT and TLS handshake, then many requests), curl;
  - ``https-new``: HTTPS with a new CONNECT and TLS handshake for every request, curl;
  - ``h2``: HTTP/2 over TLS inside the tunnel, keep-alive, many streams per connection, curl;
  - ``h2-to-h1``: the same client (offering h2 and http/1.1, as browsers do) to a site whose origin speaks
    HTTP/1.1 only (``--h1-host``, default www.gov.uk): what mitmproxy negotiates with the client then depends
    on whether it has connected upstream yet, which is where ``connection_strategy=lazy`` costs most;

- measures the configurations alternately in rounds (per scenario: bare, bare-lazy, gateway; then the next
  scenario; then the next round) after a short warm-up of each, so drift in machine load falls on all of them,
  and prints each run, then a table per scenario: mean requests/s, the ratio to bare, and the goal
  (gateway/bare >= 1.0 for HTTPS, from the hardening issue), and proxy CPU µs per request.

The gateway runs the demo policy with the UT1 lists imported (about 640,000 domains and 43,000 URLs), as a
school would: the benchmark copies ``policies/`` into its temporary folder and imports ``--ut1`` (default
``../shared/data/ut1``) beside it, where the policy's ``imports: ../var/lists/ut1`` finds it, and prints the list
sizes. ``--no-ut1`` runs the demo policy's own lists only. (Only when the policy is the default one.)

Besides requests/s, each run prints the proxy process's CPU time per request (user + system, from /proc): less
sensitive than requests/s to other load on a shared machine, as long as the proxy is what limits the rate. The
client's CPU per request is printed for the curl scenarios too: on a 2-core machine the proxy (one busy core)
shares the other with the client and the origin, so a client near a full core would be what limits.

The target hosts (``--host``, default www.bbc.co.uk, and ``--h1-host``, both allowed by the demo policy) only exist by name: every
configuration, bare included, loads ``tests/support/route_to_origin.py``, which sends mitmproxy's upstream
connections to the local origin (upstream connections are still reused) and gives the upstream TLS handshake
the requested name. Its few hook calls per request cost the same in every configuration. Only loopback
addresses are ever contacted. mitmdump's per-flow console lines are off (``flow_detail=0``) in every
configuration.

Figures on a shared machine are noisy; compare ratios from the same run, not numbers across runs. ``--quick``
(one round of short runs, about a minute) is for a quick look; the default run takes about four minutes.
Needs ``wrk`` and ``curl`` (Debian: ``apt-get install wrk curl``; ``scripts/bootstrap`` installs both).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
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
    CurlLoad,
    Measurement,
    find_curl_tools,
    rounds,
    run_curl,
    run_wrk,
    scenarios_argument,
    stop_all,
    write_wrk_script,
)

from tests.support.mitmdump import Mitmdump, MitmdumpError  # noqa: E402

DEFAULT_GATEWAY_SCRIPTS = ["addons/gateway.py"]
DEFAULT_POLICY = REPO_ROOT / "policies" / "default.yaml"
DEMO_ROSTER = REPO_ROOT / "policies" / "demo" / "roster.csv"
DEFAULT_GATEWAY_SETS = ["gateway_policy=policies/default.yaml"]
HTTPS_GOAL = 1.0
"""gateway/bare for every HTTPS scenario, from the hardening issue ("HTTPS as fast as bare mitmdump")."""


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    scheme: str
    curl: CurlLoad | None
    """None: plain HTTP with wrk."""
    h1_origin: bool = False
    """Requests go to --h1-host, whose origin speaks HTTP/1.1 only."""

    @property
    def goal(self) -> float | None:
        return HTTPS_GOAL if self.scheme == "https" else None


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("http", "HTTP/1.1 keep-alive (wrk)", "http", None),
        Scenario("https", "HTTPS/1.1 keep-alive tunnels (curl)", "https", CurlLoad()),
        Scenario("https-new", "HTTPS/1.1 new CONNECT + TLS per request (curl)", "https", CurlLoad(new_connections=True)),
        Scenario("h2", "HTTP/2 over TLS, keep-alive, multiplexed (curl)", "https", CurlLoad(http2=True)),
        Scenario(
            "h2-to-h1", "client offering h2, origin HTTP/1.1 only, keep-alive (curl)", "https", CurlLoad(http2=True),
            h1_origin=True,
        ),
    )
}


@dataclass
class Config:
    name: str
    scripts: list[str]
    options: dict[str, str]
    proxy: Mitmdump | None = None
    runs: dict[str, list[Measurement]] = field(default_factory=dict)


@dataclass(frozen=True)
class Timing:
    duration: float
    rounds: int
    warmup: float
    settle: float


QUICK = Timing(duration=2, rounds=1, warmup=0.5, settle=1)
FULL = Timing(duration=5, rounds=2, warmup=1, settle=1)


def parse_sets(values: list[str]) -> dict[str, str]:
    options = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name:
            raise SystemExit(f"--*-set takes KEY=VALUE, not {value!r}")
        options[name] = setting
    return options


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"one round of {QUICK.duration:g}s runs (about a minute)")
    parser.add_argument("--duration", type=float, help=f"seconds per measured run (default {FULL.duration:g})")
    parser.add_argument("--rounds", type=int, help=f"alternations of all configurations (default {FULL.rounds})")
    parser.add_argument(
        "--scenarios", type=scenarios_argument(SCENARIOS), default=list(SCENARIOS.values()),
        help=f"comma-separated, from {','.join(SCENARIOS)} (default all)",
    )  # fmt: skip
    parser.add_argument("--connections", type=int, default=16, help="connections (h2: streams) in flight (default 16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads, wrk -t (default 1)")
    parser.add_argument(
        "--clients", type=int, default=2,
        help="curl processes sharing --connections (default 2; for h2, one connection each)",
    )  # fmt: skip
    parser.add_argument("--host", default="www.bbc.co.uk", help="host name in the requests (default www.bbc.co.uk)")
    parser.add_argument(
        "--h1-host", default="www.gov.uk",
        help="host name for the h2-to-h1 scenario, whose origin speaks HTTP/1.1 only (default www.gov.uk)",
    )  # fmt: skip
    parser.add_argument("--path", default="/bench", help="path in the requests (default /bench)")
    parser.add_argument(
        "--gateway-script", action="append", metavar="PATH",
        help=f"script for the gateway configuration, repeatable (default {' '.join(DEFAULT_GATEWAY_SCRIPTS)})",
    )  # fmt: skip
    parser.add_argument(
        "--gateway-set", action="append", metavar="KEY=VALUE",
        help=f"option for the gateway configuration, repeatable (default {' '.join(DEFAULT_GATEWAY_SETS)})",
    )  # fmt: skip
    parser.add_argument("--gateway-ready", metavar="REGEX", help="wait for this line in the gateway's output")
    parser.add_argument(
        "--extra-script", action="append", default=[], metavar="PATH",
        help="adds a 'gateway+extra' configuration: the gateway plus this script (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--extra-set", action="append", default=[], metavar="KEY=VALUE",
        help="option for the 'gateway+extra' configuration only (repeatable; adds that configuration)",
    )  # fmt: skip
    parser.add_argument(
        "--variant-script", action="append", default=[], metavar="PATH",
        help="adds a 'variant' configuration: these scripts instead of the gateway's, same options (repeatable)",
    )  # fmt: skip
    parser.add_argument("--no-gateway", action="store_true", help="measure bare mitmdump only")
    parser.add_argument("--no-lazy", action="store_true", help="leave out the bare-lazy reference configuration")
    parser.add_argument(
        "--ut1", default=str(REPO_ROOT.parent / "shared" / "data" / "ut1"), metavar="PATH",
        help="UT1 folder or .tar.gz imported for the demo policy (default ../shared/data/ut1)",
    )  # fmt: skip
    parser.add_argument("--no-ut1", action="store_true", help="the demo policy without the UT1 lists")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    args.timing = Timing(
        duration=args.duration if args.duration is not None else base.duration,
        rounds=args.rounds if args.rounds is not None else base.rounds,
        warmup=base.warmup,
        settle=base.settle,
    )
    if args.h1_host == args.host:
        parser.error("--h1-host must differ from --host: the origin tells them apart by name")
    if args.timing.duration <= 0 or args.timing.rounds < 1 or args.connections < 1 or args.clients < 1:
        parser.error("--duration, --rounds, --connections and --clients must be positive")
    return args


def private_store(folder: Path) -> dict[str, str]:
    """Database and spool options for one configuration, in the benchmark's temporary folder, not the checkout."""
    folder.mkdir(parents=True, exist_ok=True)
    return {"gateway_db": f"sqlite:///{folder / 'access.db'}", "gateway_spool": str(folder / "spool")}


def prepare_database(url: str) -> None:
    """Create the access-log tables (the gateway refuses an unmigrated database)."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "db", "upgrade", "--db", url],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if result.returncode != 0:
        print(f"NOTE: `gateway db upgrade --db {url}` failed; the gateway may not start:\n{result.stderr.strip()}")


def policy_with_ut1(source: str, workdir: Path) -> Path:
    """A copy of policies/ in workdir with UT1 imported where its `imports: ../var/lists/ut1` looks."""
    shutil.copytree(REPO_ROOT / "policies", workdir / "policies")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "lists", "import", source, "--into", str(workdir / "var" / "lists" / "ut1")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"importing UT1 from {source} failed:\n{result.stdout}{result.stderr}")
    summary = [line for line in result.stdout.splitlines() if line.startswith("imported ")]
    print(f"UT1: {summary[-1] if summary else result.stdout.strip()}")
    return workdir / "policies" / DEFAULT_POLICY.name


def demo_policy(workdir: Path, ut1: str | None) -> Path:
    """The demo policy in a copy of policies/ in workdir, with UT1 imported beside it unless `ut1` is None: a folder
    where variants of it (`without_section`) find the same lists."""
    if ut1 is not None:
        return policy_with_ut1(ut1, workdir)
    shutil.copytree(REPO_ROOT / "policies", workdir / "policies")
    return workdir / "policies" / DEFAULT_POLICY.name


def without_section(policy: Path, section: str, name: str) -> Path:
    """A copy of `policy` in its folder, called `name`, with its top-level `section:` taken out."""
    without, count = re.subn(rf"\n{section}:\n(?:(?:[ #].*)?\n)*", "\n", policy.read_text())
    if count != 1 or re.search(rf"(?m)^{section}:", without):
        raise SystemExit(f"could not take the {section}: section out of {policy}")
    copy = policy.with_name(name)
    copy.write_text(without)
    return copy


def demo_store(folder: Path, policy: Path) -> dict[str, str]:
    """The gateway's options for a migrated SQLite store in `folder` holding the demo roster, under `policy`."""
    from gateway.cli.roster_cmd import import_demo_roster

    options = private_store(folder) | {"gateway_policy": str(policy)}
    prepare_database(options["gateway_db"])
    import_demo_roster(options["gateway_db"], policy, DEMO_ROSTER)
    return options


def build_configs(args: argparse.Namespace, workdir: Path) -> list[Config]:
    configs = [Config("bare", [], {})]
    if not args.no_lazy:
        configs.append(Config("bare-lazy", [], {"connection_strategy": "lazy"}))
    if args.no_gateway:
        return configs
    scripts = args.gateway_script or DEFAULT_GATEWAY_SCRIPTS
    missing = [
        s for s in scripts + args.extra_script + args.variant_script
        if not (REPO_ROOT / s).exists() and not Path(s).exists()
    ]  # fmt: skip
    if missing:
        print(f"NOTE: {', '.join(missing)} not found: measuring bare mitmdump only. "
              "(The gateway addon may not be written yet; pass --gateway-script to point elsewhere.)")  # fmt: skip
        return configs
    gateway_sets = parse_sets(args.gateway_set or DEFAULT_GATEWAY_SETS)
    if not args.no_ut1 and gateway_sets.get("gateway_policy") == str(DEFAULT_POLICY.relative_to(REPO_ROOT)):
        gateway_sets["gateway_policy"] = str(policy_with_ut1(args.ut1, workdir))
    gateways = [Config("gateway", list(scripts), private_store(workdir / "gateway") | gateway_sets)]
    if args.extra_script or args.extra_set:
        options = private_store(workdir / "gateway+extra") | gateway_sets | parse_sets(args.extra_set)
        gateways.append(Config("gateway+extra", [*scripts, *args.extra_script], options))
    if args.variant_script:
        options = private_store(workdir / "variant") | gateway_sets
        gateways.append(Config("variant", list(args.variant_script), options))
    for config in gateways:
        if config.options["gateway_db"].startswith(f"sqlite:///{workdir}"):
            prepare_database(config.options["gateway_db"])
    return configs + gateways


def start_proxies(configs: list[Config], args: argparse.Namespace, workdir: Path, origin: str, origin_ca: Path) -> None:
    for config in configs:
        options = {"flow_detail": "0", "ssl_verify_upstream_trusted_ca": str(origin_ca)}
        if config.scripts:
            # The gateway refuses loopback destinations; the benchmark's origin is the one it may reach.
            options["gateway_reachable_internal"] = origin
        options.update(config.options)
        ready = args.gateway_ready if not config.name.startswith("bare") else None
        proxy = Mitmdump(
            config.scripts, options, workdir=workdir / config.name, origin=origin, ready_line=ready,
            startup_timeout=120,
        )  # fmt: skip
        try:
            config.proxy = proxy.start()
        except MitmdumpError as e:
            print(f"{config.name}: mitmdump did not start, leaving it out.\n{e}", file=sys.stderr)


class Driver:
    """Runs one scenario against one proxy for a given time."""

    def __init__(self, args: argparse.Namespace, workdir: Path, curl_tools: tuple[str, str] | None) -> None:
        self.args = args
        self.curl_tools = curl_tools
        self.wrk = shutil.which("wrk")
        self.lua = write_wrk_script(workdir / "proxy.lua", f"http://{args.host}{args.path}", args.host)

    def run(self, scenario: Scenario, proxy: Mitmdump, duration: float, *, measured: bool) -> Measurement:
        pid = proxy.process.pid if measured and proxy.process else None
        if scenario.curl is None:
            assert self.wrk is not None
            return run_wrk(
                self.wrk, proxy.port, self.lua, duration=duration, connections=self.args.connections,
                threads=self.args.threads, pid=pid,
            )  # fmt: skip
        assert self.curl_tools is not None
        host = self.args.h1_host if scenario.h1_origin else self.args.host
        return run_curl(
            self.curl_tools, scenario.curl, proxy.port, proxy.ca_cert_path, f"https://{host}{self.args.path}",
            duration=duration, connections=self.args.connections, clients=self.args.clients,
            settle=self.args.timing.settle, pid=pid,
        )  # fmt: skip


def describe(m: Measurement) -> str:
    cpu = f"   proxy cpu {m.cpu_us_per_request:6.0f} µs/req" if m.cpu_us_per_request is not None else ""
    client = f"   client cpu {m.client_cpu_us_per_request:5.0f} µs/req" if m.client_cpu_us_per_request is not None else ""
    connects = f"   {m.connects / m.requests:.2f} connects/req" if m.connects is not None and m.requests else ""
    if m.http_versions:
        connects += f"   HTTP/{','.join(m.http_versions)}"
    flags = ""
    if m.non2xx:
        flags += f"  non-2xx/3xx: {m.non2xx} (blocked? check the policy and --host)"
    if m.errors:
        flags += f"  failed: {m.errors}"
    if m.problem:
        flags += f"  {m.problem}"
    return f"{m.rate:8.0f} req/s   p50 {m.p50_ms:6.1f} ms   p99 {m.p99_ms:6.1f} ms{cpu}{client}{connects}{flags}"


def mean_rates(configs: list[Config], scenario: Scenario) -> dict[str, float]:
    return {c.name: statistics.mean(m.rate for m in c.runs[scenario.name]) for c in configs if c.runs.get(scenario.name)}


def mean_cpu(configs: list[Config], scenario: Scenario) -> dict[str, float]:
    means = {}
    for config in configs:
        values = [m.cpu_us_per_request for m in config.runs.get(scenario.name, []) if m.cpu_us_per_request is not None]
        if values:
            means[config.name] = statistics.mean(values)
    return means


def steadier(configs: list[Config], scenario: Scenario, top: str, bottom: str, cpus: dict[str, float]) -> str:
    """Two readings of `top`/`bottom` that a busy machine disturbs less than the ratio of mean rates: the median of
    the ratios of runs measured back to back in the same round, and the inverse ratio of proxy CPU per request
    (a CPU-bound proxy's throughput is the inverse of its CPU per request, whatever else the cores are doing)."""
    runs = {c.name: c.runs.get(scenario.name, []) for c in configs}
    paired = [t.rate / b.rate for t, b in zip(runs.get(top, []), runs.get(bottom, []), strict=False) if b.rate]
    text = f"   median of paired rounds {statistics.median(paired):.2f} (n={len(paired)})" if paired else ""
    if cpus.get(top) and cpus.get(bottom):
        text += f"   by proxy CPU per request {cpus[bottom] / cpus[top]:.2f}"
    return text


def report(configs: list[Config], scenarios: list[Scenario]) -> None:
    names = [c.name for c in configs]
    print("\nmean requests/s per scenario (ratio to bare) and mean proxy CPU µs per request (lower is better)")
    header = f"{'scenario':<10} " + " ".join(f"{n:>14}" for n in names)
    print(header)
    print("-" * len(header))
    verdicts, comparisons = [], []
    for scenario in scenarios:
        rates, cpus = mean_rates(configs, scenario), mean_cpu(configs, scenario)
        bare = rates.get("bare")
        cells = []
        for name in names:
            rate = rates.get(name)
            ratio = f" {rate / bare:4.2f}x" if rate is not None and bare and name != "bare" else ""
            cells.append(f"{rate:8.0f}{ratio}".rjust(14) if rate is not None else "-".rjust(14))
        print(f"{scenario.name:<10} " + " ".join(cells) + "  req/s")
        print(f"{'':<10} " + " ".join((f"{cpus[n]:8.0f} µs" if n in cpus else "-").rjust(14) for n in names) + "  cpu/req")
        if bare and rates.get("gateway"):
            ratio = rates["gateway"] / bare
            goal = "" if scenario.goal is None else (
                f"  goal >= {scenario.goal:.1f}x: {'met' if ratio >= scenario.goal else 'NOT MET'}"
            )
            cpu = f", proxy CPU per request {cpus['gateway'] / cpus['bare']:.2f}x" if "gateway" in cpus and "bare" in cpus else ""
            verdicts.append(f"  {scenario.name:<10} gateway/bare {ratio:.2f}x{goal}{cpu}  ({scenario.title})")
        for top, bottom in (("gateway+extra", "gateway"), ("gateway", "variant")):
            if rates.get(top) and rates.get(bottom):
                comparisons.append(f"  {scenario.name:<10} {top}/{bottom} = {rates[top] / rates[bottom]:.2f}"
                                   + steadier(configs, scenario, top, bottom, cpus))  # fmt: skip
    if verdicts:
        print("\ngateway against bare mitmdump")
        print("\n".join(verdicts))
    if comparisons:
        print("\n".join(comparisons))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios: list[Scenario] = args.scenarios
    curl_tools = find_curl_tools()
    if any(s.curl is None for s in scenarios) and shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk (or run scripts/bootstrap)", file=sys.stderr)
        return 1
    if any(s.curl is not None for s in scenarios) and curl_tools is None:
        print("curl or stdbuf is not installed: apt-get install curl coreutils (or run scripts/bootstrap)",
              file=sys.stderr)  # fmt: skip
        return 1

    workdir = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    timing: Timing = args.timing
    configs: list[Config] = []
    origin = None
    try:
        configs = build_configs(args, workdir)
        origin, origin_port, origin_ca = start_origin(workdir / "origin-ca", args.host, args.h1_host)
        start_proxies(configs, args, workdir, f"127.0.0.1:{origin_port}", origin_ca)
        configs = [c for c in configs if c.proxy is not None]
        if not configs:
            return 1
        driver = Driver(args, workdir, curl_tools)
        print(f"origin 127.0.0.1:{origin_port}; requests for {args.host}{args.path} (h2-to-h1: {args.h1_host}) "
              "through each proxy, routed to the origin by tests/support/route_to_origin.py (loaded in every "
              "configuration); flow_detail=0")  # fmt: skip
        print(f"{args.connections} connections (h2: streams) in flight; curl in {args.clients} processes; "
              f"{timing.duration:g}s per run after {timing.settle:g}s settling (curl), {timing.rounds} round(s), "
              f"after a {timing.warmup:g}s warm-up of each")  # fmt: skip
        for config in configs:
            extra = " ".join(f"-s {s}" for s in config.scripts) + "".join(f" --set {k}={v}" for k, v in config.options.items())
            print(f"  {config.name:<14} mitmdump {extra}".rstrip())

        def run(scenario: Scenario, config: Config, duration: float, measured: bool) -> Measurement:
            assert config.proxy is not None
            return driver.run(scenario, config.proxy, duration, measured=measured)

        rounds(configs, scenarios, run, rounds=timing.rounds, duration=timing.duration, warmup=timing.warmup,
               describe=describe)  # fmt: skip
    finally:
        stop_all((c.proxy for c in configs), origin, workdir)

    report(configs, scenarios)
    return 0


if __name__ == "__main__":
    sys.exit(main())
