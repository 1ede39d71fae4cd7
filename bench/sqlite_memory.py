#!/usr/bin/env python3
"""The proxy's memory under steady load, logging to SQLite and to PostgreSQL side by side.

    .venv/bin/python bench/sqlite_memory.py [--minutes 5] [--rate 300] [--sample 10] [--postgresql URL] [--no-ut1]
    .venv/bin/python bench/sqlite_memory.py --writer [--minutes 2] [--rate 800]

Default: two ``mitmdump -s addons/gateway.py``, the same policy, one logging to a SQLite file and one to a fresh
PostgreSQL database (bench/store_for_bench.py), each driven at ``--rate`` requests/s by its own steady load
(bench/endurance.py) at the same time; every ``--sample`` seconds the RSS of both and their rows so far.

``--writer``: the access-log writer alone, in this process, fed ``--rate`` rows/s in bursts of varying size (as
the proxy's batches vary), SQLite then PostgreSQL; RSS every ``--sample`` seconds. This is how the growth was
found. sqlite3 keeps a connection's last 128 prepared statements, and the writer's multi-row INSERT was one
statement per batch length, about 2 MB each at 500 rows: 5 minutes at 800 rows/s (233,584 rows) took the
writer from 76 to 281 MiB, still climbing (PostgreSQL, one statement: flat). The writer now uses power-of-two
lengths only (at most ten statements): 77 to 162 MiB in the first two minutes, then flat to the fifth
(243,657 rows). What it still gains is SQLite's page cache filling to its configured 64 MiB (``cache_size``
in gateway/store/engine.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
for _path in (REPO_ROOT, REPO_ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench_origin import start_origin  # noqa: E402
from endurance import Tally, logged_counts, prepare_database, rss_mib, start_gateway, steady_load  # noqa: E402
from store_for_bench import LOCAL_POSTGRESQL, bench_store  # noqa: E402
from throughput import DEFAULT_POLICY, policy_with_ut1  # noqa: E402

from gateway.decisions.types import Action, Decision, PeriodKind, Source  # noqa: E402
from gateway.identity.types import Identity  # noqa: E402
from gateway.store.access_rows import access_row  # noqa: E402
from gateway.store.migrate import upgrade  # noqa: E402
from gateway.store.writer import AccessLogWriter  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, help="minutes of load (default 5; --writer 2)")
    parser.add_argument("--rate", type=float, help="requests/s per proxy (default 300), rows/s with --writer (800)")
    parser.add_argument("--sample", type=float, default=10, help="seconds between readings (default 10)")
    parser.add_argument("--postgresql", default=LOCAL_POSTGRESQL, help=f"PostgreSQL server (default {LOCAL_POSTGRESQL})")
    parser.add_argument("--writer", action="store_true", help="the access-log writer alone, in this process")
    parser.add_argument(
        "--ut1", default=str(REPO_ROOT.parent / "shared" / "data" / "ut1"), metavar="PATH",
        help="UT1 folder or .tar.gz imported for the demo policy (default ../shared/data/ut1)",
    )  # fmt: skip
    parser.add_argument("--no-ut1", action="store_true", help="the demo policy without the UT1 lists")
    args = parser.parse_args(argv)
    args.minutes = args.minutes or (2 if args.writer else 5)
    args.rate = args.rate or (800 if args.writer else 300)
    return args


async def side_by_side(proxies: dict[str, tuple[int, int, str]], rate: float, seconds: float, sample: float) -> None:
    """Loads every proxy at once; prints each one's RSS and logged rows every `sample` s."""
    tallies = {name: Tally(f"memory-{name}-{uuid.uuid4().hex[:6]}") for name in proxies}
    names = list(proxies)
    print(f"{'minutes':>8}  " + "  ".join(f"{name + ' RSS MiB':>18} {name + ' rows':>15}" for name in names))
    start = time.monotonic()

    async def sampler() -> None:
        while True:
            cells = []
            for name in names:
                _port, pid, url = proxies[name]
                rows = await asyncio.to_thread(lambda: sum(logged_counts(url, tallies[name].run).values()))
                cells.append(f"{rss_mib(pid) or 0:>18.1f} {rows:>15}")
            print(f"{(time.monotonic() - start) / 60:>8.1f}  " + "  ".join(cells), flush=True)
            await asyncio.sleep(sample)

    task = asyncio.create_task(sampler())
    await asyncio.gather(*(
        steady_load(proxies[name][0], tallies[name].run, rate=rate, seconds=seconds, tally=tallies[name])
        for name in names
    ))  # fmt: skip
    task.cancel()
    for name in names:
        print(f"{name}: {tallies[name].summary()}")


def proxies_run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="bench-sqlite-memory-"))
    started = []
    origin = None
    try:
        with bench_store("sqlite", workdir) as sqlite_url, bench_store(args.postgresql, workdir) as pg_url:
            policy = DEFAULT_POLICY if args.no_ut1 else policy_with_ut1(args.ut1, workdir)
            origin, origin_port, origin_ca = start_origin(workdir / "origin-ca", "www.bbc.co.uk", "www.gov.uk")
            target = f"127.0.0.1:{origin_port}"
            proxies = {}
            for name, url in (("sqlite", sqlite_url), ("postgresql", pg_url)):
                prepare_database(url)
                proxy = start_gateway(workdir / name, target, origin_ca, url, policy,
                                      extra={"gateway_reachable_internal": target})  # fmt: skip
                started.append(proxy)
                assert proxy.process is not None
                proxies[name] = (proxy.port, proxy.process.pid, url)
            print(f"two gateways (mitmdump -s addons/gateway.py, policy {policy}), {args.rate:g} requests/s each "
                  f"for {args.minutes:g} min; RSS of each proxy process")  # fmt: skip
            asyncio.run(side_by_side(proxies, args.rate, args.minutes * 60, args.sample))
    finally:
        for proxy in started:
            proxy.stop()
        if origin is not None:
            origin.kill()
            origin.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def writer_run(args: argparse.Namespace) -> int:
    """The writer alone: RSS of this process while it writes bursts of rows (see the module's docstring)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-writer-memory-"))
    allow = Decision(Action.ALLOW, Source.DEFAULT, "default", PeriodKind.LESSON, "www.bbc.co.uk")
    try:
        for name, spec in (("sqlite", "sqlite"), ("postgresql", args.postgresql)):
            with bench_store(spec, workdir / name) as url:
                (workdir / name).mkdir(parents=True, exist_ok=True)
                upgrade(url)
                writer = AccessLogWriter(url, workdir / name / "spool").start()
                print(f"\n{name}: {args.rate:g} rows/s for {args.minutes:g} min, in bursts of 0.4-1.6x that each second")
                start, n, next_sample = time.monotonic(), 0, 0.0
                while (elapsed := time.monotonic() - start) < args.minutes * 60:
                    for _ in range(random.randint(int(args.rate * 0.4), int(args.rate * 1.6))):
                        writer.submit(access_row(
                            identity=Identity(group="pupil", client_ip=f"10.10.{n % 250}.{n % 200}", username=f"p{n % 900}"),
                            decision=allow, instant=datetime.now(UTC), method="GET", scheme="https",
                            host=f"www.site{n % 3000}.example", path=f"/page/{n}", query="", status=200, size=1,
                            keep_query=False, site="main",
                        ))  # fmt: skip
                        n += 1
                    if elapsed >= next_sample:
                        print(f"  {elapsed:6.0f} s   rows {writer.written:>9}   RSS {rss_mib_self():7.1f} MiB", flush=True)
                        next_sample += args.sample
                    time.sleep(max(0.0, 1 - (time.monotonic() - start - elapsed)))
                writer.close()
                print(f"  end      rows {writer.written:>9}   RSS {rss_mib_self():7.1f} MiB")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def rss_mib_self() -> float:
    return rss_mib(os.getpid()) or 0.0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return writer_run(args) if args.writer else proxies_run(args)


if __name__ == "__main__":
    sys.exit(main())
