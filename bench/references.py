#!/usr/bin/env python3
"""The gateway against the references a school would compare it with: E2Guardian and squid, on the same machine,
in the same run, under the same load as bare mitmdump.

    .venv/bin/python bench/references.py [--quick] [--duration 5] [--rounds 2] [--connections 16] [--clients 2]
        [--scenarios http,http-new,https,https-new] [--no-ut1] [--only bare,gateway,e2guardian,...]

What it does, in one run:

- starts the benchmark origin (bench/bench_origin.py's, through bench/reference_origin.py): a 13-byte answer over
  plain HTTP/1.1 and TLS, on a free loopback port and, when run as root, on 127.0.0.44 ports 80 and 443;
- starts every configuration, each on a free port:

  - ``bare``: mitmdump with no addon of ours;
  - ``gateway``: ``mitmdump -s addons/gateway.py`` with the demo policy and the UT1 lists imported (as
    bench/throughput.py), identity and the access log (SQLite in the run's folder);
  - ``gateway-proxy``: ``gateway proxy`` (the gateway's own lean mitmproxy Master), same options, when the
    command exists;
  - ``gateway-workers``: ``--workers`` of those, as ``gateway run --workers N`` runs them (see below);
  - ``e2guardian``: Debian's E2Guardian with Debian's own configuration moved into the run's folder
    (bench/reference_proxies.py), HTTPS tunnelled as it ships (``sslmitm = off``);
  - ``e2guardian-mitm``: the same with its TLS interception switched on (``enablessl``, ``sslmitm``, a CA made
    for the run, checking the origin's certificate); E2Guardian intercepts only CONNECTs to port 443, so this
    needs the origin on port 443 (root). E2Guardian 5.3 answers every intercepted request with
    ``Connection: close``, so its ``https`` run opens a connection per request too (the run shows
    ``1.00 connects/req``);
  - ``squid``: Debian's squid, ``squid -N -f`` a configuration in the run's folder, no cache; HTTPS tunnelled
    (Debian's squid cannot intercept TLS);

  mitmdump's configurations reach the origin through tests/support/route_to_origin.py; E2Guardian and squid by
  name, from hosts files of their own (nothing of the system is changed). Every proxy is asked for the same URLs
  (``http://www.bbc.co.uk/bench``, ``https://www.bbc.co.uk/bench``), except, when not root, the references, whose
  URLs then carry the origin's port (and ``e2guardian-mitm`` is left out);
- drives each with the load of bench/throughput.py (bench/proxy_load.py):

  - ``http``: plain HTTP keep-alive (wrk, absolute-form requests as a browser with a proxy sends);
  - ``http-new``: the same with ``Connection: close``: a new connection per request (wrk reconnects);
  - ``https``: HTTPS keep-alive tunnels (curl, one CONNECT and handshake, many requests);
  - ``https-new``: a new CONNECT and TLS handshake per request (curl);

- measures the configurations alternately in rounds, after a warm-up of each, and prints every run, then a table
  per scenario: requests/s (in the ``-new`` scenarios, new connections/s), the ratio to bare mitmdump and to
  E2Guardian (for HTTPS: to ``e2guardian-mitm`` when measured, the like-for-like reference; the tunnelled
  ``e2guardian`` is shown too), and proxy CPU µs per request; and the geometric mean over the scenarios (the
  "mixed workload").

E2Guardian runs threads on every core; mitmdump and one gateway process use one; ``gateway-workers`` is
``--workers`` (default: the cores) ``gateway proxy`` processes as ``gateway run --workers N`` runs them (one store,
one spool folder, one CA, worker i on a port of its own; started directly, so they load
tests/support/route_to_origin.py), the load's connections spread evenly over their ports (as the PAC file or the
nftables hash spreads devices), the figures and the workers' CPU summed. Figures on a shared machine are noisy: compare ratios
from one run. ``--quick`` takes about two minutes; the default about six (plus the UT1 import).
Needs ``wrk``, ``curl``, ``e2guardian`` and ``squid`` (Debian: ``apt-get install -y wrk curl e2guardian squid``;
the installed services need not run: the benchmark starts its own).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import reference_origin  # noqa: E402
from proxy_load import (  # noqa: E402
    CurlLoad,
    Measurement,
    Stoppable,
    find_curl_tools,
    load_tools_or_say,
    rounds,
    run_curl,
    run_wrk,
    scenarios_argument,
    spread,
    stop_all,
    write_wrk_script,
)
from reference_proxies import INSTALL, ReferenceError, missing_programs, start_e2guardian, start_squid  # noqa: E402
from throughput import DEFAULT_POLICY, policy_with_ut1, prepare_database, private_store  # noqa: E402

from tests.support.mitmdump import GATEWAY_PROXY, Mitmdump, MitmdumpError  # noqa: E402

HOST = "www.bbc.co.uk"
H1_HOST = "www.gov.uk"
PATH = "/bench"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    scheme: str
    curl: CurlLoad | None
    new_connections: bool


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("http", "HTTP/1.1 keep-alive (wrk)", "http", None, False),
        Scenario("http-new", "HTTP/1.1, a new connection per request (wrk, Connection: close)", "http", None, True),
        Scenario("https", "HTTPS keep-alive tunnels (curl)", "https", CurlLoad(), False),
        Scenario("https-new", "HTTPS, a new CONNECT + TLS per request (curl)", "https", CurlLoad(new_connections=True), True),
    )
}
CONFIG_NAMES = ["bare", "gateway", "gateway-proxy", "gateway-workers", "e2guardian", "e2guardian-mitm", "squid"]


class Proxy(Protocol):
    port: int

    @property
    def pid(self) -> int: ...


@dataclass
class _MitmdumpProxy:
    mitmdump: Mitmdump

    @property
    def port(self) -> int:
        return self.mitmdump.port

    @property
    def pid(self) -> int:
        assert self.mitmdump.process is not None
        return self.mitmdump.process.pid


@dataclass
class Config:
    name: str
    describe: str
    proxies: list[Proxy] = field(default_factory=list)
    """One, or a gateway's workers, over whose ports the load is spread."""
    ca: Path | None = None
    """The CA its clients trust for HTTPS."""
    url_port: str = ""
    """":<port>" in the URLs it is asked for, when the origin is not on the standard ports for it."""
    stop: list[Stoppable] = field(default_factory=list)
    runs: dict[str, list[Measurement]] = field(default_factory=dict)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one round of 2 s runs")
    parser.add_argument("--duration", type=float, help="seconds per measured run (default 5; --quick 2)")
    parser.add_argument("--rounds", type=int, help="alternations of all configurations (default 2; --quick 1)")
    parser.add_argument("--scenarios", type=scenarios_argument(SCENARIOS), default=list(SCENARIOS.values()),
                        help=f"comma-separated, from {','.join(SCENARIOS)}")  # fmt: skip
    parser.add_argument("--only", default=",".join(CONFIG_NAMES), help=f"configurations, from {','.join(CONFIG_NAMES)}")
    parser.add_argument("--connections", type=int, default=16, help="connections in flight (default 16)")
    parser.add_argument("--clients", type=int, default=2, help="curl processes sharing them (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="gateway-workers: N (default: the cores)")
    parser.add_argument(
        "--ut1", default=str(REPO_ROOT.parent / "shared" / "data" / "ut1"), metavar="PATH",
        help="UT1 folder or .tar.gz imported for the gateway's demo policy (default ../shared/data/ut1)",
    )  # fmt: skip
    parser.add_argument("--no-ut1", action="store_true", help="the demo policy without the UT1 lists")
    args = parser.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.warmup, args.settle = (0.5, 1.0) if args.quick else (1.0, 1.0)
    args.only = [n.strip() for n in args.only.split(",") if n.strip()]
    if unknown := set(args.only) - set(CONFIG_NAMES):
        parser.error(f"unknown configuration {', '.join(sorted(unknown))}; they are {', '.join(CONFIG_NAMES)}")
    return args


def gateway_proxy_exists() -> bool:
    result = subprocess.run([*GATEWAY_PROXY, "--help"], cwd=REPO_ROOT, capture_output=True, timeout=60)
    return result.returncode == 0


def start_mitmdumps(args: argparse.Namespace, workdir: Path, origin: str, origin_ca: Path) -> list[Config]:
    wanted = [n for n in ("bare", "gateway", "gateway-proxy", "gateway-workers") if n in args.only]
    if any(n in wanted for n in ("gateway-proxy", "gateway-workers")) and not gateway_proxy_exists():
        print("NOTE: `gateway proxy` does not exist in this checkout: gateway-proxy and gateway-workers not measured")
        wanted = [n for n in wanted if n not in ("gateway-proxy", "gateway-workers")]
    gateway_sets: dict[str, str] = {}
    if any(n.startswith("gateway") for n in wanted):
        policy = DEFAULT_POLICY if args.no_ut1 else policy_with_ut1(args.ut1, workdir)
        gateway_sets = {"gateway_policy": str(policy), "gateway_reachable_internal": origin}
    configs = []
    for name in wanted:
        options = {"ssl_verify_upstream_trusted_ca": str(origin_ca)}
        scripts: list[str] = []
        program: tuple[str, ...] = (str(Path(sys.executable).with_name("mitmdump")),)
        # As `gateway run --workers N` runs them: one store, one spool folder, one CA, worker i on a port of its own.
        count = args.workers if name == "gateway-workers" else 1
        if name != "bare":
            options |= private_store(workdir / name) | gateway_sets
            prepare_database(options["gateway_db"])
        if name == "gateway":
            scripts = ["addons/gateway.py"]
        elif name.startswith("gateway-"):
            program = GATEWAY_PROXY
        else:
            options["flow_detail"] = "0"  # mitmdump's console lines; the gateway's own Master prints none
        config = Config(name, "")
        for n in range(count):
            worker = options | ({"gateway_worker": str(n)} if count > 1 else {})
            proxy = Mitmdump(
                scripts, worker, workdir=workdir / name / str(n), origin=origin, startup_timeout=180, program=program,
                confdir=workdir / name / "ca",
            )  # fmt: skip
            try:
                proxy.start()
            except MitmdumpError as e:
                print(f"{name}: did not start, leaving it out.\n{e}", file=sys.stderr)
                break
            config.stop.append(proxy)
            config.proxies.append(_MitmdumpProxy(proxy))
            config.ca = proxy.ca_cert_path
        if len(config.proxies) < count:
            for proxy in config.stop:
                proxy.stop()
            continue
        command = "gateway proxy" if program == GATEWAY_PROXY else "mitmdump"
        shown = " ".join(f"-s {s}" for s in scripts) + "".join(f" --set {k}={v}" for k, v in options.items())
        workers = f"{count} x " if count > 1 else ""
        config.describe = f"{workers}{command} {shown}".strip() + (" (the load spread over their ports)" if count > 1 else "")
        configs.append(config)
    return configs


def start_references(args: argparse.Namespace, workdir: Path, named: str, origin_port: int, origin_ca: Path) -> list[Config]:
    wanted = [n for n in ("e2guardian", "e2guardian-mitm", "squid") if n in args.only]
    if not wanted:
        return []
    if missing := missing_programs():
        print(f"NOTE: {', '.join(missing)} not installed ({INSTALL}): left out")
    address = named or "127.0.0.1"
    url_port = "" if named else f":{origin_port}"
    names = [HOST, H1_HOST]
    starters = {
        "e2guardian": lambda: start_e2guardian(workdir / "e2guardian", names, address, origin_ca, mitm=False),
        "e2guardian-mitm": lambda: start_e2guardian(workdir / "e2guardian-mitm", names, address, origin_ca, mitm=True),
        "squid": lambda: start_squid(workdir / "squid", names, address),
    }
    configs = []
    for name in wanted:
        if name == "e2guardian-mitm" and not named:
            print("NOTE: e2guardian-mitm left out: E2Guardian intercepts only CONNECTs to port 443, and the origin "
                  "could not listen there (run as root)")  # fmt: skip
            continue
        try:
            reference = starters[name]()
        except (ReferenceError, subprocess.CalledProcessError, OSError) as e:
            print(f"NOTE: {name} did not start, leaving it out: {e}")
            continue
        how = {
            "e2guardian": "e2guardian -N -c <Debian's configuration, moved>: HTTPS tunnelled (sslmitm off, as shipped)",
            "e2guardian-mitm": "e2guardian -N -c <Debian's configuration, moved>, enablessl + sslmitm on: HTTPS intercepted",
            "squid": "squid -N -f <no cache>: HTTPS tunnelled",
        }[name]
        config = Config(name, f"{how}  (folder {reference.folder})", [reference], reference.ca_cert_path or origin_ca, url_port)
        config.stop.append(reference)
        configs.append(config)
    return configs


class Driver:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.wrk = shutil.which("wrk")
        self.curl = find_curl_tools()
        self._lua: dict[tuple[str, bool], Path] = {}

    def lua(self, url_port: str, close: bool) -> Path:
        key = (url_port, close)
        if key not in self._lua:
            self._lua[key] = write_wrk_script(
                self.workdir / f"wrk{len(self._lua)}.lua", f"http://{HOST}{url_port}{PATH}", f"{HOST}{url_port}",
                close=close,
            )  # fmt: skip
        return self._lua[key]

    def run(self, scenario: Scenario, config: Config, duration: float, *, measured: bool) -> Measurement:
        """The load on the configuration's one port, or spread evenly over its workers' ports at once (the same
        connections in flight in all), the figures summed."""
        proxies = config.proxies

        def one(i: int, share: int) -> Measurement:
            return self._one(scenario, config, proxies[i], share, duration, measured)

        done = spread(one, len(proxies), self.args.connections)
        if len(done) == 1:
            return done[0]
        cpus = [r.cpu_seconds for r in done]
        return Measurement(
            requests=sum(r.requests for r in done), seconds=statistics.mean(r.seconds for r in done),
            non2xx=sum(r.non2xx for r in done), errors=sum(r.errors for r in done),
            p50_ms=max(r.p50_ms for r in done), p99_ms=max(r.p99_ms for r in done),
            cpu_seconds=None if None in cpus else sum(cpus),  # type: ignore[arg-type]
            connects=None if any(r.connects is None for r in done) else sum(r.connects or 0 for r in done),
            problem=" ".join(r.problem for r in done if r.problem),
        )  # fmt: skip

    def _one(self, scenario: Scenario, config: Config, proxy: Proxy, connections: int, duration: float,
             measured: bool) -> Measurement:  # fmt: skip
        pid = proxy.pid if measured else None
        if scenario.curl is None:
            assert self.wrk is not None
            return run_wrk(
                self.wrk, proxy.port, self.lua(config.url_port, scenario.new_connections), duration=duration,
                connections=connections, threads=self.args.threads, pid=pid,
            )  # fmt: skip
        assert self.curl is not None and config.ca is not None
        return run_curl(
            self.curl, scenario.curl, proxy.port, config.ca, f"https://{HOST}{config.url_port}{PATH}",
            duration=duration, connections=connections, clients=min(self.args.clients, connections),
            settle=self.args.settle, pid=pid,
        )  # fmt: skip


def describe(m: Measurement) -> str:
    cpu = f"   proxy cpu {m.cpu_us_per_request:6.0f} µs/req" if m.cpu_us_per_request is not None else ""
    connects = f"   {m.connects / m.requests:.2f} connects/req" if m.connects is not None and m.requests else ""
    flags = (f"  non-2xx: {m.non2xx}" if m.non2xx else "") + (f"  failed: {m.errors}" if m.errors else "")
    return f"{m.rate:8.0f} req/s   p50 {m.p50_ms:6.1f} ms   p99 {m.p99_ms:6.1f} ms{cpu}{connects}{flags}{m.problem}"


def reference_for(scenario: Scenario, rates: dict[str, float]) -> str | None:
    """The E2Guardian configuration a scenario's ratio is taken to: like for like, intercepting for HTTPS."""
    if scenario.scheme == "https" and rates.get("e2guardian-mitm"):
        return "e2guardian-mitm"
    return "e2guardian" if rates.get("e2guardian") else None


def geometric_mean(values: list[float]) -> str:
    return f"{math.exp(statistics.mean(math.log(v) for v in values)):.2f}" if values and all(values) else "-"


def report(configs: list[Config], scenarios: list[Scenario]) -> None:
    names = [c.name for c in configs]
    means: dict[str, dict[str, float]] = {}
    for scenario in scenarios:
        rates = {c.name: statistics.mean(m.rate for m in c.runs[scenario.name]) for c in configs if c.runs.get(scenario.name)}
        cpus = {}
        for c in configs:
            values = [m.cpu_us_per_request for m in c.runs.get(scenario.name, []) if m.cpu_us_per_request is not None]
            if values:
                cpus[c.name] = statistics.mean(values)
        means[scenario.name] = rates
        reference = reference_for(scenario, rates)
        unit = "new connections/s" if scenario.new_connections else "requests/s"
        against = reference or "E2Guardian (not measured)"
        print(f"\n{scenario.name}: {scenario.title}   ({unit}; ratios to bare mitmdump and to {against})")
        if scenario.curl is None and scenario.new_connections:
            print("  (wrk counts a read error each time a proxy closes a connection its answer did not say it would "
                  "close, as mitmproxy does; those requests were answered and are counted)")  # fmt: skip
        print(f"  {'configuration':<16} {unit:>18} {'x bare':>8} {'x E2G':>8} {'cpu µs/req':>11}")
        for name in names:
            if name not in rates:
                continue
            rate = rates[name]
            bare = f"{rate / rates['bare']:.2f}" if rates.get("bare") else "-"
            e2g = f"{rate / rates[reference]:.2f}" if reference else "-"
            cpu = f"{cpus[name]:.0f}" if name in cpus else "-"
            print(f"  {name:<16} {rate:>18.0f} {bare:>8} {e2g:>8} {cpu:>11}")
    print("\nmixed workload: geometric mean of each configuration's ratios over the scenarios above")
    print(f"  {'configuration':<16} {'x bare':>8} {'x E2G':>8}")
    for name in names:
        to_bare, to_e2g = [], []
        for scenario in scenarios:
            rates = means[scenario.name]
            reference = reference_for(scenario, rates)
            if name in rates and rates.get("bare"):
                to_bare.append(rates[name] / rates["bare"])
            if name in rates and reference:
                to_e2g.append(rates[name] / rates[reference])
        print(f"  {name:<16} {geometric_mean(to_bare):>8} {geometric_mean(to_e2g):>8}")
    print("\ngoal (issue 12): the gateway on all cores (gateway-workers) >= 1.0x E2Guardian on a mixed workload, in "
          "requests/s and in new connections/s")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios: list[Scenario] = args.scenarios
    if load_tools_or_say() is None:
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="bench-references-"))
    # The references drop to their own users, which must reach their folders inside this one.
    workdir.chmod(0o755)
    configs: list[Config] = []
    origin = None
    try:
        origin, origin_port, origin_ca, named = reference_origin.start(
            workdir / "origin-ca", HOST, H1_HOST, named=os.geteuid() == 0
        )
        origin_ca.parent.chmod(0o755)
        loopback = f"127.0.0.1:{origin_port}"
        configs = start_mitmdumps(args, workdir, loopback, origin_ca)
        configs += start_references(args, workdir, named, origin_port, origin_ca)
        if not configs:
            return 1
        print(f"origin {loopback}" + (f" and {named}:80,443 (the references' {HOST})" if named else ""))
        print(f"{args.connections} connections in flight; curl in {args.clients} processes; {args.duration:g}s per run, "
              f"{args.rounds} round(s), after a {args.warmup:g}s warm-up of each")  # fmt: skip
        for config in configs:
            print(f"  {config.name:<16} {config.describe}")
        driver = Driver(args, workdir)

        def run(scenario: Scenario, config: Config, duration: float, measured: bool) -> Measurement:
            return driver.run(scenario, config, duration, measured=measured)

        rounds(configs, scenarios, run, rounds=args.rounds, duration=args.duration, warmup=args.warmup,
               describe=describe)  # fmt: skip
    finally:
        stop_all((part for config in configs for part in config.stop), origin, workdir)
    report(configs, scenarios)
    return 0


if __name__ == "__main__":
    sys.exit(main())
