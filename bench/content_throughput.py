#!/usr/bin/env python3
"""Content analysis cost: the gateway with real-time content analysis on against the same gateway with it off, same
run, same origin, HTTP and HTTPS, on HTML pages and on images and downloads.

    .venv/bin/python bench/content_throughput.py [--quick] [--duration 5] [--rounds 2] [--connections 8]

- An origin (this script, `--serve-origin`, in its own process, asyncio on one thread) answers over plain HTTP/1.1
  and HTTPS/1.1 on one loopback port (bench/bench_origin.py's certificates, by SNI): `/page.html`, a ~50 KB page of
  ordinary educational English (the clean pages of tests/fixtures/content, which score nothing, so every page is
  analysed in full and passes), the same bytes every time, as when a class opens one lesson page (the gateway
  analyses it once and remembers the finding); `/unique.html`, that page with a counter at its end, so every
  response is new and analysed (the worst case); `/photo.jpg`, 2 MB `image/jpeg`; `/pack.zip`, 4 MB
  `application/zip`.
- Two mitmdumps run the gateway with the demo policy (its own lists, no UT1: the lists are not what is measured):
  `on` as shipped (content analysis enabled) and `off` with `content.enabled: false`; each has its own SQLite
  access log.
- Per payload and scheme (`http`: wrk with absolute-form requests through the proxy; `https`: curl keep-alive
  tunnels), the two are measured alternately in rounds after a warm-up, and the table gives requests/s, MB/s,
  proxy CPU per request and on/off. Goals (issue 10): >= 0.9x on HTML pages, >= 0.98x on images and downloads.

Figures on a shared 2-core machine are noisy; compare the ratios of one run. The proxy's CPU per request is the
steadier figure while the proxy is what limits the rate.

One run (3 rounds of 4 s, 8 in flight, 2 cores shared with other test runs), mean req/s off -> on (on/off) and proxy
CPU µs per request off -> on, with the C normaliser and matcher (gateway/content/_scan.c):

    html http          139 -> 150   (1.08x)   7259 -> 6719      same page each time: analysed once, then remembered
    html https         136 -> 150   (1.10x)   7415 -> 6687
    html-unique http   133 -> 144   (1.09x)   7667 -> 7012      every page new: analysed in full each time
    html-unique https  133 -> 135   (1.01x)   7589 -> 7434
    image http          86 -> 89    (1.04x)  11711 -> 11265     images and downloads take the same streamed path on
    image https         50 -> 56    (1.13x)  20252 -> 17805     and off; the spread is the machine's noise
    download http       63 -> 64    (1.02x)  16025 -> 15741
    download https      33 -> 34    (1.04x)  31046 -> 29740

The machine was busy: the proxy spent ~7.5 ms of CPU per request with analysis off, three times what it spends on a
quiet one, so the on/off spread above is mostly noise. The steadier figure is the analysis itself on the 50 KB
never-seen page (`analyse_page`, same session): 0.21 ms best, 0.24 ms mean CPU, against 5.6 ms with the Python
normaliser and pyahocorasick it replaced (normalisation was ~5 ms of that); the script prints it after the table. On
a quiet machine (~2.3 ms of proxy CPU per request) that is ~10% more CPU for a never-seen page: at the 0.9x goal, not
far inside it.

The same session, machine otherwise idle (2 rounds of 4 s), on/off and proxy CPU µs per request off -> on:

    html http 0.98x (3701 -> 3721)        html-unique http 1.08x (3309 -> 2953)
    html https 1.08x (3399 -> 3129)       html-unique https 0.92x (3587 -> 3853)
    image http 1.05x, https 1.12x         download http 1.21x, https 1.00x
    analyse_page on the never-seen page: best 221 µs, mean CPU 233 µs (about 7% of a request's 3.3 ms)
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench_origin import CA_CERT_NAME, _first_byte, tls_context  # noqa: E402
from lesson_page import COUNTER, COUNTER_SIZE, html_page  # noqa: E402
from proxy_load import CurlLoad, Measurement, find_curl_tools, run_curl, run_wrk, write_wrk_script  # noqa: E402
from throughput import prepare_database, private_store  # noqa: E402

from gateway.content.build import build_analyser  # noqa: E402
from gateway.identity.types import Identity  # noqa: E402
from gateway.policy.loader import load_policy  # noqa: E402
from tests.support.mitmdump import Mitmdump, die_with_parent  # noqa: E402

HOST = "www.bbc.co.uk"
# bench_origin's TLS offers h2 for its first name; requests go to the second, HTTP/1.1 only, which this origin speaks.
UNUSED_H2_HOST = "h2.bench.invalid"
GOALS = {"html": 0.9, "html-unique": 0.9, "image": 0.98, "download": 0.98}


@dataclass(frozen=True)
class Payload:
    name: str
    path: str
    content_type: str
    body: bytes
    # Every response differs (a counter at its end): nothing is analysed twice, the worst case.
    unique: bool = False


def payloads() -> list[Payload]:
    pseudo_random = bytes((i * 2654435761 >> 13) & 0xFF for i in range(1 << 16))
    return [
        Payload("html", "/page.html", "text/html; charset=utf-8", html_page()),
        Payload("html-unique", "/unique.html", "text/html; charset=utf-8", html_page(), unique=True),
        Payload("image", "/photo.jpg", "image/jpeg", b"\xff\xd8\xff\xe0" + pseudo_random * 32),
        Payload("download", "/pack.zip", "application/zip", b"PK\x03\x04" + pseudo_random * 64),
    ]


# -- the origin ----------------------------------------------------------------------------------------------


class _Origin(asyncio.Protocol):
    responses: dict[bytes, bytes] = {}
    unique: set[bytes] = set()
    served = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        # The benchmark's requests have no bodies: a blank line ends each.
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            target = head.split(b" ", 2)[1]
            path = target.split(b"?", 1)[0]
            response = self.responses.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            if path in self.unique:
                _Origin.served += 1
                response += COUNTER % _Origin.served
            self.transport.write(response)


async def _serve_connection(conn: socket.socket, tls: ssl.SSLContext) -> None:
    try:
        first = await _first_byte(conn)
        context = tls if first and first[0] == 0x16 else None
        await asyncio.get_running_loop().connect_accepted_socket(_Origin, conn, ssl=context)
    except (OSError, ssl.SSLError):
        conn.close()


async def serve(ca_dir: Path) -> None:
    for payload in payloads():
        length = len(payload.body) + (COUNTER_SIZE if payload.unique else 0)
        header = f"HTTP/1.1 200 OK\r\nContent-Type: {payload.content_type}\r\nContent-Length: {length}\r\n\r\n"
        _Origin.responses[payload.path.encode()] = header.encode() + payload.body
        if payload.unique:
            _Origin.unique.add(payload.path.encode())
    tls = tls_context(ca_dir, UNUSED_H2_HOST, HOST)
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    listener.setblocking(False)
    print(listener.getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    while True:
        conn, _ = await loop.sock_accept(listener)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = loop.create_task(_serve_connection(conn, tls))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def start_origin(ca_dir: Path) -> tuple[subprocess.Popen[str], int, Path]:
    process = subprocess.Popen([sys.executable, __file__, "--serve-origin", str(ca_dir)], stdout=subprocess.PIPE,
                               text=True, preexec_fn=die_with_parent)  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip().isdigit():
        process.kill()
        raise SystemExit(f"the origin did not start (got {line!r})")
    return process, int(line), ca_dir / CA_CERT_NAME


# -- the proxies and the load ------------------------------------------------------------------------------------


@dataclass
class Config:
    name: str
    policy: Path
    proxy: Mitmdump | None = None
    runs: dict[tuple[str, str], list[Measurement]] = field(default_factory=dict)


def policies(workdir: Path) -> tuple[Path, Path]:
    """The demo policy as shipped (analysis on), and a copy with `content.enabled: false`."""
    shutil.copytree(REPO_ROOT / "policies", workdir / "policies")
    on = workdir / "policies" / "default.yaml"
    text = on.read_text()
    off_text, count = re.subn(r"(?m)^(content:\n  enabled: )true$", r"\1false", text)
    if count != 1:
        raise SystemExit("could not find `content:\\n  enabled: true` in policies/default.yaml")
    off = workdir / "policies" / "content-off.yaml"
    off.write_text(off_text)
    return on, off


def start(config: Config, workdir: Path, origin: str, origin_ca: Path) -> None:
    store = private_store(workdir / config.name)
    prepare_database(store["gateway_db"])
    options = {"flow_detail": "0", "ssl_verify_upstream_trusted_ca": str(origin_ca), "gateway_reachable_internal": origin,
               "gateway_policy": str(config.policy), **store}  # fmt: skip
    config.proxy = Mitmdump(["addons/gateway.py"], options, workdir=workdir / config.name, origin=origin,
                            ready_line=r"policy .* loaded", startup_timeout=120).start()  # fmt: skip


def measure(payload: Payload, scheme: str, proxy: Mitmdump, lua: Path, args: argparse.Namespace,
            curl_tools: tuple[str, str] | None, duration: float, measured: bool) -> Measurement:  # fmt: skip
    pid = proxy.process.pid if measured and proxy.process else None
    if scheme == "http":
        return run_wrk(shutil.which("wrk") or "wrk", proxy.port, lua, duration=duration, connections=args.connections,
                       threads=1, pid=pid)  # fmt: skip
    assert curl_tools is not None
    return run_curl(curl_tools, CurlLoad(), proxy.port, proxy.ca_cert_path, f"https://{HOST}{payload.path}",
                    duration=duration, connections=args.connections, clients=2, settle=1, pid=pid)  # fmt: skip


def describe(m: Measurement, size: int) -> str:
    cpu = f"   proxy cpu {m.cpu_us_per_request:7.0f} µs/req" if m.cpu_us_per_request is not None else ""
    flags = f"  non-2xx: {m.non2xx}" if m.non2xx else ""
    flags += f"  failed: {m.errors}" if m.errors else ""
    return f"{m.rate:8.1f} req/s {m.rate * size / 1e6:8.1f} MB/s   p50 {m.p50_ms:7.1f} ms{cpu}{flags}"


def report(configs: list[Config], cases: list[tuple[Payload, str]]) -> None:
    print("\nmean per case: requests/s, MB/s and proxy CPU per request; on/off ratio of requests/s (goal)")
    print(f"{'case':<16} {'off req/s':>10} {'on req/s':>10} {'off MB/s':>9} {'on MB/s':>9} {'off µs':>8} {'on µs':>8}"
          f" {'on/off':>7}")  # fmt: skip
    by_name = {c.name: c for c in configs}
    for payload, scheme in cases:
        key = (payload.name, scheme)
        off, on = by_name["off"].runs.get(key, []), by_name["on"].runs.get(key, [])
        if not off or not on:
            continue
        rate_off, rate_on = statistics.mean(m.rate for m in off), statistics.mean(m.rate for m in on)
        cpu_off = statistics.mean(m.cpu_us_per_request or 0 for m in off)
        cpu_on = statistics.mean(m.cpu_us_per_request or 0 for m in on)
        ratio = rate_on / rate_off if rate_off else 0.0
        goal = GOALS[payload.name]
        size = len(payload.body)
        print(f"{payload.name + ' ' + scheme:<16} {rate_off:10.1f} {rate_on:10.1f} {rate_off * size / 1e6:9.1f} "
              f"{rate_on * size / 1e6:9.1f} {cpu_off:8.0f} {cpu_on:8.0f} {ratio:6.2f}x  goal >= {goal}: "
              f"{'met' if ratio >= goal else 'NOT MET'}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round of 3 s runs")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run (default 5)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of on and off (default 2)")
    parser.add_argument("--connections", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--scenarios", default="http,https", help="comma-separated, from http,https")
    parser.add_argument("--serve-origin", metavar="CA_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_origin:
        asyncio.run(serve(Path(args.serve_origin)))
        return 0
    duration, rounds = (3.0, 1) if args.quick else (args.duration, args.rounds)
    schemes = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    curl_tools = find_curl_tools()
    if ("http" in schemes and shutil.which("wrk") is None) or ("https" in schemes and curl_tools is None):
        print("needs wrk and curl: apt-get install wrk curl (or run scripts/bootstrap)", file=sys.stderr)
        return 1

    workdir = Path(tempfile.mkdtemp(prefix="bench-content-"))
    items = payloads()
    cases = [(payload, scheme) for scheme in schemes for payload in items]
    origin_process = None
    configs: list[Config] = []
    try:
        on_policy, off_policy = policies(workdir)
        configs = [Config("off", off_policy), Config("on", on_policy)]
        origin_process, port, origin_ca = start_origin(workdir / "origin-ca")
        for config in configs:
            start(config, workdir, f"127.0.0.1:{port}", origin_ca)
        luas = {p.name: write_wrk_script(workdir / f"{p.name}.lua", f"http://{HOST}{p.path}", HOST) for p in items}
        print(f"origin 127.0.0.1:{port}; payloads: " + ", ".join(f"{p.name} {p.path} {len(p.body) / 1024:.0f} KB"
                                                                  for p in items))  # fmt: skip
        print(f"{args.connections} requests in flight; {duration:g} s per run, {rounds} round(s), after a warm-up")
        for payload, scheme in cases:
            for config in configs:
                assert config.proxy is not None
                measure(payload, scheme, config.proxy, luas[payload.name], args, curl_tools, 1.0, False)
        for round_no in range(1, rounds + 1):
            for payload, scheme in cases:
                order = configs if round_no % 2 else configs[::-1]
                for config in order:
                    assert config.proxy is not None
                    m = measure(payload, scheme, config.proxy, luas[payload.name], args, curl_tools, duration, True)
                    config.runs.setdefault((payload.name, scheme), []).append(m)
                    print(f"round {round_no}  {payload.name:<9} {scheme:<6} {config.name:<4} "
                          f"{describe(m, len(payload.body))}", flush=True)  # fmt: skip
    finally:
        for config in configs:
            if config.proxy is not None:
                config.proxy.stop()
        if origin_process is not None:
            origin_process.kill()
            origin_process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    report(configs, cases)
    print_analysis_cost()
    return 0


def print_analysis_cost() -> None:
    """The analysis of one never-seen page on its own, in this process: the figure the proxy's noise hides."""
    analyser = build_analyser(load_policy(REPO_ROOT / "policies" / "default.yaml"))
    assert analyser is not None
    page = html_page().decode() + (COUNTER % 1).decode()
    pupil = Identity(group="pupil")
    best = min(timeit.repeat(lambda: analyser.analyse_page(page, pupil), number=1, repeat=300))
    start = time.process_time()
    for _ in range(300):
        analyser.analyse_page(page, pupil)
    mean = (time.process_time() - start) / 300
    print(f"\nanalyse_page on the {len(page.encode()) / 1024:.0f} KB never-seen page, in this process: best "
          f"{best * 1e6:.0f} µs, mean CPU {mean * 1e6:.0f} µs")


if __name__ == "__main__":
    sys.exit(main())
