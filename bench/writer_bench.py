"""Access-log writer capacity: rows per second from `submit` to committed in SQLite (goal ≥ 10,000 rows/s).

    .venv/bin/python bench/writer_bench.py [--rows 200000] [--db sqlite:///var/bench/writer.db]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.decisions.types import Action, Decision, PeriodKind, Source  # noqa: E402
from gateway.identity.types import Identity  # noqa: E402
from gateway.store.access_rows import access_row  # noqa: E402
from gateway.store.migrate import upgrade  # noqa: E402
from gateway.store.writer import AccessLogWriter  # noqa: E402

GOAL = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--db", default=None, help="default: a fresh SQLite file in a temporary folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="writer-bench-"))
    url = args.db or f"sqlite:///{folder / 'gateway.db'}"
    upgrade(url)
    decisions = [
        Decision(Action.ALLOW, Source.DEFAULT, "default", PeriodKind.LESSON, "www.bbc.co.uk"),
        Decision(Action.BLOCK, Source.RULE, "social", PeriodKind.LESSON, "www.tiktok.com", rule="r", list="social"),
    ]
    rows = [
        access_row(
            identity=Identity(group="pupil", client_ip=f"10.10.{n % 250}.{n % 200}", username=f"pupil{n % 900}",
                              school_class=f"{n % 6 + 1}{'ABC'[n % 3]}", device=f"ipad-{n % 400}"),  # fmt: skip
            decision=decisions[n % 7 == 0], instant=datetime.now(UTC), method="GET", scheme="https",
            host=f"www.site{n % 3000}.example", path=f"/page/{n}", query="q=x&hl=en", status=200, size=12345,
            keep_query=False, site="main",
        )  # fmt: skip
        for n in range(args.rows)
    ]
    writer = AccessLogWriter(url, folder / "spool").start()
    start = time.perf_counter()
    for row in rows:
        writer.submit(row)
    submitted = time.perf_counter()
    writer.close()
    done = time.perf_counter()
    rate = args.rows / (done - start)
    print(f"rows:                {args.rows:,}")
    print(f"submit (proxy side): {(submitted - start) / args.rows * 1e6:.2f} µs/row, never blocks")
    print(f"written:             {writer.written:,}  spooled: {writer.spooled}  rejected: {writer.rejected}")
    print(f"writer capacity:     {rate:,.0f} rows/s   (goal ≥ {GOAL:,} rows/s: {'met' if rate >= GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
