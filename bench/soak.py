#!/usr/bin/env python3
"""Soak: the gateway at 80 % of its measured capacity for half an hour, with a checked count and its memory.

    .venv/bin/python bench/soak.py [--minutes 30] [--load 0.8] [--db sqlite|postgresql://...] [--no-ut1]
        [--connections 16] [--sample 60] [--capacity-seconds 10]

In one run:

1. starts the benchmark origin and ``mitmdump -s addons/gateway.py`` with the demo policy (UT1 imported, as
   bench/throughput.py does; ``--no-ut1`` without), identity and the access log, in a store of its own (a SQLite
   file in the run's folder, or with ``--db postgresql://...`` a fresh database made on that server and dropped
   at the end);
2. measures its capacity: keep-alive HTTP requests/s flat out (wrk, 16 connections, ``--capacity-seconds``);
3. drives it at ``--load`` (80 %) of that, a steady rate, for ``--minutes``, every request to a path of its own
   (bench/endurance.py), printing the proxy's RSS and the requests so far every ``--sample`` seconds;
4. counts: every request answered (responses by status; failed and late requests), and every one logged exactly
   once (the access log's rows counted by path: missing and duplicates must both be 0); RSS first, last and max.

It exits 1 when a request went unanswered or a row is missing or doubled.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench_origin import start_origin  # noqa: E402
from endurance import Tally, capacity, check_log, prepare_database, rss_mib, start_gateway, steady_load  # noqa: E402
from store_for_bench import bench_store  # noqa: E402
from throughput import DEFAULT_POLICY, policy_with_ut1  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30, help="minutes of steady load (default 30)")
    parser.add_argument("--load", type=float, default=0.8, help="fraction of the measured capacity (default 0.8)")
    parser.add_argument("--db", default="sqlite", help="sqlite (default: a file in the run's folder) or a PostgreSQL URL")
    parser.add_argument("--connections", type=int, default=16, help="connections of the load (default 16)")
    parser.add_argument("--sample", type=float, default=60, help="seconds between memory readings (default 60)")
    parser.add_argument("--capacity-seconds", type=float, default=10, help="length of the capacity run (default 10)")
    parser.add_argument("--rate", type=float, help="requests/s of the soak, instead of --load times the capacity")
    parser.add_argument(
        "--ut1", default=str(REPO_ROOT.parent / "shared" / "data" / "ut1"), metavar="PATH",
        help="UT1 folder or .tar.gz imported for the demo policy (default ../shared/data/ut1)",
    )  # fmt: skip
    parser.add_argument("--no-ut1", action="store_true", help="the demo policy without the UT1 lists")
    return parser.parse_args(argv)


async def soak(port: int, pid: int, tally: Tally, rate: float, seconds: float, sample: float) -> list[tuple[float, float]]:
    """The load, and the proxy's RSS (MiB) at its start and every `sample` s: [(elapsed s, MiB)]."""
    readings: list[tuple[float, float]] = []
    start = time.monotonic()

    async def sampler() -> None:
        while True:
            rss = rss_mib(pid)
            elapsed = time.monotonic() - start
            if rss is not None:
                readings.append((elapsed, rss))
            print(f"  {elapsed / 60:6.1f} min   RSS {rss or 0:7.1f} MiB   sent {tally.sent:>9}   answered "
                  f"{len(tally.answered):>9}   failed {len(tally.failed):>5}   late {tally.late:>6}", flush=True)  # fmt: skip
            await asyncio.sleep(sample)

    task = asyncio.create_task(sampler())
    await steady_load(port, tally.run, rate=rate, seconds=seconds, tally=tally)
    task.cancel()
    rss = rss_mib(pid)
    if rss is not None:
        readings.append((time.monotonic() - start, rss))
    return readings


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    origin = proxy = None
    try:
        with bench_store(args.db, workdir) as db_url:
            prepare_database(db_url)
            policy = DEFAULT_POLICY if args.no_ut1 else policy_with_ut1(args.ut1, workdir)
            origin, origin_port, origin_ca = start_origin(workdir / "origin-ca", "www.bbc.co.uk", "www.gov.uk")
            target = f"127.0.0.1:{origin_port}"
            proxy = start_gateway(workdir / "gateway", target, origin_ca, db_url, policy,
                                  extra={"gateway_reachable_internal": target})  # fmt: skip
            assert proxy.process is not None
            pid = proxy.process.pid
            print(f"gateway: mitmdump -s addons/gateway.py, policy {policy}, store {db_url}")
            measured = capacity(proxy.port, workdir, seconds=args.capacity_seconds)
            rate = args.rate or measured * args.load
            print(f"capacity: {measured:.0f} keep-alive requests/s (wrk, 16 connections, {args.capacity_seconds:g} s); "
                  f"soak at {rate:.0f} requests/s ({rate / measured:.0%}) for {args.minutes:g} min, "
                  f"{args.connections} connections")  # fmt: skip
            tally = Tally(f"soak-{uuid.uuid4().hex[:8]}")
            readings = asyncio.run(soak(proxy.port, pid, tally, rate, args.minutes * 60, args.sample))
            achieved = tally.sent / (args.minutes * 60)
            print(f"\nload: {tally.summary()}; {achieved:.0f} requests/s achieved")
            log = check_log(db_url, tally)
            print(f"access log: {log.summary()} (of {len(tally.answered)} answered requests)")
            values = [mib for _, mib in readings]
            print(f"proxy RSS: first {values[0]:.1f} MiB, last {values[-1]:.1f} MiB, max {max(values):.1f} MiB "
                  f"(growth {values[-1] - values[0]:+.1f} MiB over {args.minutes:g} min)")  # fmt: skip
            answered_all = not tally.failed
            logged_once = not log.missing and not log.duplicates
            print(f"\nevery request answered: {'yes' if answered_all else 'NO'}; every one logged exactly once: "
                  f"{'yes' if logged_once else 'NO'}")  # fmt: skip
            return 0 if answered_all and logged_once else 1
    finally:
        if proxy is not None:
            proxy.stop()
        if origin is not None:
            origin.kill()
            origin.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
