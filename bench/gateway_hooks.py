#!/usr/bin/env python3
"""What the gateway's parts cost per request, without the network: µs per request through mitmproxy's own dispatch.

    .venv/bin/python bench/gateway_hooks.py [--requests 20000] [--https] [--no-ut1] [--profile 25]

Builds the gateway's Master (gateway/proxy/master.py) in this process with the demo policy (UT1 imported, as in
bench/lean_master.py), the demo roster in a migrated SQLite store and the access log writing to it, runs its
`running` hooks, then sends plain-HTTP flows (``--https``: flows inside 16 CONNECT tunnels) for www.bbc.co.uk
from 127.0.0.1 (a pupil, allowed) through the four request hooks (requestheaders, request, responseheaders, response) as mitmproxy's addon manager calls them; and
the same flows through the Master with none of the gateway's parts. The difference is the gateway's own CPU per
request, the figure a change to the hot path should lower: no sockets, no TLS, no other process competing, so
it is far steadier on a loaded machine than requests/s. ``--profile N`` adds cProfile's N costliest functions of
the gateway run (by own time).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from mitmproxy import options  # noqa: E402
from mitmproxy.proxy.layers.http import (  # noqa: E402
    HttpConnectHook,
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from mitmproxy.http import Response  # noqa: E402
from mitmproxy.test import tflow  # noqa: E402
from throughput import policy_with_ut1, prepare_database  # noqa: E402

from gateway.proxy.master import GatewayMaster  # noqa: E402
from gateway.proxy.parts import gateway_addons  # noqa: E402

DEMO_POLICY = REPO_ROOT / "policies" / "default.yaml"
DEMO_ROSTER = REPO_ROOT / "policies" / "demo" / "roster.csv"
EVENTS = (HttpRequestHeadersHook, HttpRequestHook, HttpResponseHeadersHook, HttpResponseHook)


class Plain:
    """Plain-HTTP requests from a browser set to use the proxy: no TLS between client and gateway."""

    def __init__(self, host: str = "www.bbc.co.uk", path: str = "/bench") -> None:
        self.host, self.path = host, path

    def flow(self, i: int) -> tflow.HTTPFlow:
        f = tflow.tflow()
        f.client_conn.peername = ("127.0.0.1", 40000 + i % 1000)
        f.client_conn.sni = None
        f.client_conn.tls_version = None
        f.client_conn.timestamp_tls_setup = None
        f.request.host = self.host
        f.request.headers["Host"] = self.host
        f.request.path = _numbered(self.path, i)
        return f


def _numbered(path: str, i: int) -> str:
    return f"{path}{'&' if '?' in path else '?'}n={i}"


class Tunnels:
    """HTTPS keep-alive: 16 client connections, each opened with a CONNECT (through the http_connect hook), then
    request after request inside it, as curl's keep-alive tunnels send them."""

    def __init__(self, host: str = "www.bbc.co.uk", path: str = "/bench") -> None:
        self.host, self.path = host, path
        self.clients: list[tflow.connection.Client] = []

    async def open(self, master: GatewayMaster) -> None:
        for i in range(16):
            connect = tflow.tflow()
            client = connect.client_conn
            client.peername = ("127.0.0.1", 50000 + i)
            client.sni = self.host
            connect.request.method = "CONNECT"
            connect.request.authority = f"{self.host}:443"
            connect.request.host, connect.request.port = self.host, 443
            await master.addons.handle_lifecycle(HttpConnectHook(connect))
            self.clients.append(client)

    def flow(self, i: int) -> tflow.HTTPFlow:
        f = tflow.tflow(client_conn=self.clients[i % len(self.clients)])
        f.request.scheme, f.request.host, f.request.port = "https", self.host, 443
        f.request.headers["Host"] = self.host
        f.request.path = _numbered(self.path, i)
        return f


async def per_request(master: GatewayMaster, flow: Callable[[int], tflow.HTTPFlow], count: int) -> float:
    """µs of CPU per request through the four request hooks."""
    flows = [flow(i) for i in range(count)]
    started = time.process_time()
    for f in flows:
        for event in EVENTS[:2]:
            await master.addons.handle_lifecycle(event(f))
        if f.response is None:
            f.response = Response.make(200, b"origin ok", {"Content-Type": "text/plain"})
        for event in EVENTS[2:]:
            await master.addons.handle_lifecycle(event(f))
    return (time.process_time() - started) / count * 1e6


async def measure(specs: list[str], with_parts: bool, https: bool, count: int, profile: int,
                  target: tuple[str, str] = ("www.bbc.co.uk", "/bench")) -> float:  # fmt: skip
    opts = options.Options()
    master = GatewayMaster(opts)
    opts.set(*specs, defer=True)
    master.add_parts(gateway_addons() if with_parts else [])
    await master.running()
    await asyncio.sleep(1)  # the identity sources and grant follower finish their first load
    flow = Plain(*target).flow
    if https:
        tunnels = Tunnels(*target)
        await tunnels.open(master)
        flow = tunnels.flow
    await per_request(master, flow, min(count, 2000))  # warm-up: caches, first-time code paths
    profiler = cProfile.Profile() if profile and with_parts else None
    if profiler is not None:
        profiler.enable()
    result = await per_request(master, flow, count)
    if profiler is not None:
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(profile)
        ours = r"gateway/(proxy|decisions|identity|lists|content|circumvention)"
        stats.sort_stats("cumtime").print_stats(ours, profile)
    await master.done()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--ut1", default=str(REPO_ROOT.parent / "shared" / "data" / "ut1"), metavar="PATH")
    parser.add_argument("--no-ut1", action="store_true")
    parser.add_argument("--https", action="store_true", help="requests inside CONNECT tunnels, as HTTPS sends them")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print cProfile's N costliest functions")
    args = parser.parse_args()
    from gateway.cli.roster_cmd import import_demo_roster

    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-hooks-"))
    try:
        policy = DEMO_POLICY if args.no_ut1 else policy_with_ut1(args.ut1, workdir)
        db = f"sqlite:///{workdir / 'access.db'}"
        prepare_database(db)
        import_demo_roster(db, policy, DEMO_ROSTER)
        specs = [f"confdir={workdir / 'ca'}", f"gateway_policy={policy}", f"gateway_db={db}",
                 f"gateway_spool={workdir / 'spool'}", "termlog_verbosity=warn"]  # fmt: skip
        lean = asyncio.run(measure(specs[:1], False, args.https, args.requests, 0))
        full = asyncio.run(measure(specs, True, args.https, args.requests, args.profile))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    kind = "HTTPS requests in 16 keep-alive tunnels" if args.https else "plain-HTTP requests"
    print(f"{args.requests} {kind}, allowed, from a pupil's address; CPU per request through mitmproxy's dispatch of "
          "requestheaders, request, responseheaders and response:")  # fmt: skip
    print(f"  lean Master, no gateway parts: {lean:7.1f} µs")
    print(f"  with the gateway's parts:      {full:7.1f} µs   (the gateway's own: {full - lean:.1f} µs per request)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
