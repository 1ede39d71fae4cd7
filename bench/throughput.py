#!/usr/bin/env python3
"""Proxy throughput: bare mitmdump against mitmdump with the gateway, same origin, same load.

    .venv/bin/python bench/throughput.py [--duration 10] [--connections 16] [--rounds 2]
        [--gateway-script addons/gateway.py ...] [--gateway-set gateway_policy=policies/default.yaml ...]
        [--extra-script PATH ...] [--extra-set KEY=VALUE ...] [--variant-script PATH ...]

What it does, in one run:

- starts a small asyncio HTTP/1.1 keep-alive origin in its own process (so it is not what limits
  the figures) answering every request with a fixed 13-byte body;
- starts one mitmdump per configuration: ``bare`` (no addon of ours), ``gateway`` (the gateway
  scripts and ``--set`` options given here), and, with ``--extra-script``/``--extra-set``,
  ``gateway+extra`` (the gateway plus those scripts/options), and with ``--variant-script``, ``variant`` (those
  scripts instead of the gateway's, same options: e.g. ``bench/gateway_without_access_log.py`` for the access
  log's cost);
- drives each with ``wrk`` through the proxy: wrk connects to the proxy's port and sends
  absolute-form requests (``GET http://www.bbc.co.uk/bench HTTP/1.1``), as a browser configured with
  an HTTP proxy does, from a generated Lua script;
- measures the configurations alternately (bare, gateway, bare, gateway, ...) after a short warm-up of
  each, so drift in machine load falls on all of them, and prints requests/s per run, the mean per
  configuration and the ratio to bare.

The gateway runs the demo policy with the UT1 lists imported (about 640,000 domains and 43,000 URLs), as a
school would: the benchmark copies ``policies/`` into its temporary folder and imports ``--ut1`` (default
``../shared/data/ut1``) beside it, where the policy's ``imports: ../var/lists/ut1`` finds it, and prints the list
sizes. ``--no-ut1`` runs the demo policy's own lists only. (Only when the policy is the default one.)

Besides requests/s, each run prints the proxy process's CPU time per request (user + system, from /proc): less
sensitive than requests/s to other load on a shared machine, as long as the proxy is what limits the rate.

The target host (``--host``, default www.bbc.co.uk, which the demo policy allows) only exists by
name, so every configuration, bare included, loads ``tests/support/route_to_origin.py``, which
sends mitmproxy's upstream connections to the local origin (upstream connections are still reused).
Its few hook calls per request cost the same in every configuration. ``--host 127.0.0.1`` sends the
requests straight to the origin's address instead, without that script.
Plain HTTP only: wrk cannot speak TLS through a proxy, so the cost of HTTPS interception is not here.
mitmdump's per-flow console lines are off (``flow_detail=0``) in every configuration.

Figures on a shared machine are noisy; compare ratios from the same run, not numbers across runs.
Needs ``wrk`` (Debian: ``apt-get install wrk``; ``scripts/bootstrap`` installs it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.mitmdump import Mitmdump, MitmdumpError, die_with_parent  # noqa: E402

ORIGIN_BODY = b"bench origin\n"
ORIGIN_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
    + str(len(ORIGIN_BODY)).encode()
    + b"\r\n\r\n"
    + ORIGIN_BODY
)
DEFAULT_GATEWAY_SCRIPTS = ["addons/gateway.py"]
DEFAULT_POLICY = REPO_ROOT / "policies" / "default.yaml"
DEFAULT_GATEWAY_SETS = ["gateway_policy=policies/default.yaml"]
WARMUP_SECONDS = 2


# -- the origin: run as `throughput.py --serve-origin`, prints its port --------------------------------


class _OriginProtocol(asyncio.Protocol):
    """Answers each request (headers only; the benchmark sends no bodies) with ORIGIN_RESPONSE."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        count = self.buffer.count(b"\r\n\r\n")
        if count:
            self.buffer = self.buffer[self.buffer.rindex(b"\r\n\r\n") + 4 :]
            self.transport.write(ORIGIN_RESPONSE * count)  # type: ignore[attr-defined]


async def _serve_origin() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_OriginProtocol, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def start_origin() -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-origin"], stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip().isdigit():
        process.kill()
        raise SystemExit(f"the benchmark origin did not start (got {line!r})")
    return process, int(line)


# -- wrk ---------------------------------------------------------------------------------------------

LUA = """\
-- wrk through an HTTP proxy: wrk connects to the proxy, requests carry the absolute URL.
local target = "{target}"
local host = "{host}"

init = function(args)
  req = wrk.format("GET", target, {{["Host"] = host}})
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


@dataclass
class Measurement:
    requests: int
    seconds: float
    non2xx: int
    errors: int
    p50_ms: float
    p99_ms: float
    cpu_seconds: float | None = None

    @property
    def cpu_us_per_request(self) -> float | None:
        return self.cpu_seconds / self.requests * 1e6 if self.cpu_seconds is not None and self.requests else None

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (all its threads), or None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
                requests=int(data["requests"]),
                seconds=data["duration_us"] / 1e6,
                non2xx=int(data["non2xx"]),
                errors=int(data["connect"] + data["read"] + data["write"] + data["timeout"]),
                p50_ms=data["p50_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                cpu_seconds=cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None,
            )
    raise SystemExit(f"wrk gave no result (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")


# -- configurations ------------------------------------------------------------------------------------


@dataclass
class Config:
    name: str
    scripts: list[str]
    options: dict[str, str]
    proxy: Mitmdump | None = None
    runs: list[Measurement] = field(default_factory=list)


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
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured run (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="open connections, wrk -c (default 16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads, wrk -t (default 1)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of all configurations (default 2)")
    parser.add_argument("--host", default="www.bbc.co.uk", help="host name in the requests (default www.bbc.co.uk)")
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
    parser.add_argument(
        "--ut1", default=str(REPO_ROOT.parent / "shared" / "data" / "ut1"), metavar="PATH",
        help="UT1 folder or .tar.gz imported for the demo policy (default ../shared/data/ut1)",
    )  # fmt: skip
    parser.add_argument("--no-ut1", action="store_true", help="the demo policy without the UT1 lists")
    parser.add_argument("--serve-origin", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


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


def build_configs(args: argparse.Namespace, workdir: Path) -> list[Config]:
    configs = [Config("bare", [], {})]
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
    configs.append(Config("gateway", list(scripts), private_store(workdir / "gateway") | gateway_sets))
    if args.extra_script or args.extra_set:
        options = private_store(workdir / "gateway+extra") | gateway_sets | parse_sets(args.extra_set)
        configs.append(Config("gateway+extra", [*scripts, *args.extra_script], options))
    if args.variant_script:
        options = private_store(workdir / "variant") | gateway_sets
        configs.append(Config("variant", list(args.variant_script), options))
    for config in configs[1:]:
        if config.options["gateway_db"].startswith(f"sqlite:///{workdir}"):
            prepare_database(config.options["gateway_db"])
    return configs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_origin:
        asyncio.run(_serve_origin())
        return 0
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed: apt-get install wrk (or run scripts/bootstrap)", file=sys.stderr)
        return 1

    workdir = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    configs = build_configs(args, workdir)
    origin, origin_port = start_origin()
    lua = workdir / "proxy.lua"
    direct = args.host == "127.0.0.1"
    host = f"127.0.0.1:{origin_port}" if direct else args.host
    lua.write_text(LUA.format(target=f"http://{host}{args.path}", host=host))

    try:
        for config in configs:
            options = {"flow_detail": "0", **config.options}
            ready = args.gateway_ready if config.name != "bare" else None
            proxy = Mitmdump(
                config.scripts, options, workdir=workdir / config.name, origin=None if direct else f"127.0.0.1:{origin_port}",
                ready_line=ready, startup_timeout=120,
            )  # fmt: skip
            try:
                config.proxy = proxy.start()
            except MitmdumpError as e:
                print(f"{config.name}: mitmdump did not start, leaving it out.\n{e}", file=sys.stderr)
        configs = [c for c in configs if c.proxy is not None]
        if not configs:
            return 1

        route = "straight to the origin" if direct else (
            "routed to the origin by tests/support/route_to_origin.py (loaded in every configuration)"
        )
        print(f"origin 127.0.0.1:{origin_port}; requests GET http://{host}{args.path} through each proxy, {route}")
        print(f"wrk -t{args.threads} -c{args.connections}, {args.duration:g}s per run, {args.rounds} rounds, "
              f"after a {WARMUP_SECONDS}s warm-up of each; flow_detail=0")  # fmt: skip
        for config in configs:
            extra = " ".join(f"-s {s}" for s in config.scripts) + "".join(f" --set {k}={v}" for k, v in config.options.items())
            print(f"  {config.name:<14} mitmdump {extra}".rstrip())
        for config in configs:
            assert config.proxy is not None
            run_wrk(wrk, config.proxy.port, lua, duration=WARMUP_SECONDS, connections=args.connections, threads=args.threads)

        for round_no in range(1, args.rounds + 1):
            for config in configs:
                assert config.proxy is not None
                m = run_wrk(
                    wrk, config.proxy.port, lua, duration=args.duration, connections=args.connections,
                    threads=args.threads, pid=config.proxy.process.pid if config.proxy.process else None,
                )  # fmt: skip
                config.runs.append(m)
                flags = ""
                if m.non2xx:
                    flags += f"  non-2xx/3xx: {m.non2xx} (blocked? check the policy and --host)"
                if m.errors:
                    flags += f"  socket errors: {m.errors}"
                cpu = f"   cpu {m.cpu_us_per_request:6.0f} µs/req" if m.cpu_us_per_request is not None else ""
                print(f"round {round_no}  {config.name:<14} {m.rate:9.0f} req/s   p50 {m.p50_ms:6.1f} ms   "
                      f"p99 {m.p99_ms:6.1f} ms{cpu}{flags}")  # fmt: skip
    finally:
        for config in configs:
            if config.proxy is not None:
                config.proxy.stop()
        origin.kill()
        origin.wait()

    bare = statistics.mean(m.rate for m in configs[0].runs) if configs[0].name == "bare" and configs[0].runs else None
    print("\nmean requests/s")
    for config in configs:
        if not config.runs:
            continue
        mean = statistics.mean(m.rate for m in config.runs)
        spread = f"(runs {', '.join(f'{m.rate:.0f}' for m in config.runs)})"
        ratio = f"  {config.name}/bare = {mean / bare:.2f}" if bare and config.name != "bare" else ""
        print(f"  {config.name:<14} {mean:9.0f} {spread}{ratio}")
    cpus = {c.name: [m.cpu_us_per_request for m in c.runs if m.cpu_us_per_request is not None] for c in configs}
    if all(cpus.values()):
        print("mean proxy CPU µs per request (lower is better)")
        bare_cpu = statistics.mean(cpus["bare"]) if "bare" in cpus else None
        for name, values in cpus.items():
            mean = statistics.mean(values)
            ratio = f"  bare/{name} = {bare_cpu / mean:.2f}" if bare_cpu and name != "bare" else ""
            print(f"  {name:<14} {mean:9.0f}{ratio}")
    names = [c.name for c in configs]
    if "gateway" in names and "gateway+extra" in names:
        gateway = statistics.mean(m.rate for m in configs[names.index("gateway")].runs)
        extra = statistics.mean(m.rate for m in configs[names.index("gateway+extra")].runs)
        print(f"  gateway+extra/gateway = {extra / gateway:.2f}")
    if "gateway" in names and "variant" in names:
        gateway = statistics.mean(m.rate for m in configs[names.index("gateway")].runs)
        variant = statistics.mean(m.rate for m in configs[names.index("variant")].runs)
        print(f"  gateway/variant = {gateway / variant:.2f}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
