"""Console queries at scale: seed N access-log rows into SQLite (default 10 M, 90 days), then time the log
pages, a person's timeline and the dashboard. Goal: a log page and each dashboard view in ≤ 300 ms at 10 M rows.

    .venv/bin/python bench/console_bench.py [--rows 10000000] [--db var/bench/console.db] [--reseed]

The seeded file is kept and reused (seeding 10 M rows takes minutes); --reseed makes it again. Seeding bypasses
the log writer, so the dashboard's hourly counts are rebuilt afterwards (as `gateway db rebuild-rollups` does);
a file seeded by an older version is migrated and its counts rebuilt on first use.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy.orm import Session  # noqa: E402

from gateway.store.engine import make_engine  # noqa: E402
from gateway.store.migrate import current_revision, head_revision, upgrade  # noqa: E402
from gateway.store.rollups import rebuild_all  # noqa: E402
from gateway.web import log_queries  # noqa: E402
from gateway.web.log_queries import LogFilter  # noqa: E402
from seed_store import empty_log_for_seeding  # noqa: E402

GOAL_MS = 300
ZONE = ZoneInfo("Europe/London")
DAYS = 90


def seed(path: Path, rows: int) -> None:
    """Bulk insert in SQLite itself (a recursive CTE), with the indexes built afterwards from sorted data."""
    db, indexes = empty_log_for_seeding(path)
    end = datetime.now(UTC).replace(tzinfo=None)
    start_jd = db.execute("SELECT julianday(?)", ((end - timedelta(days=DAYS)).isoformat(sep=" "),)).fetchone()[0]
    step = DAYS / rows
    hosts = ["www.tiktok.com", "www.instagram.com", "www.roblox.com", "www.bbc.co.uk", "www.google.co.uk",
             "www.youtube.com", "classroom.google.com", "www.facebook.com", "discord.com", "www.twitch.tv"]  # fmt: skip
    host_case = " ".join(f"WHEN {i} THEN '{h}'" for i, h in enumerate(hosts))
    chunk = 1_000_000
    started = time.perf_counter()
    for offset in range(0, rows, chunk):
        count = min(chunk, rows - offset)
        db.execute(f"""
            WITH RECURSIVE n(i) AS (SELECT {offset} UNION ALL SELECT i + 1 FROM n WHERE i < {offset + count - 1}),
            r AS (SELECT i, abs(random()) AS a, abs(random()) AS b FROM n),
            v AS (SELECT i, a, b,
                    CASE WHEN a % 10 < 6 THEN CASE a % 10 {host_case} END
                         ELSE printf('www.site%d.example', b % 20000) END AS host,
                    CASE WHEN b % 100 < 8 THEN 'block' WHEN b % 100 < 10 THEN 'flag' ELSE 'allow' END AS action
                  FROM r)
            INSERT INTO access_log (row_id, at, site, username, display_name, group_name, school_class, year_group,
                device, client_ip, identity_source, method, scheme, host, host_rev, path, query, search_terms,
                action, source, rule, list_name, matched, reason, period, status, bytes, error)
            SELECT printf('%032x', i),
                   strftime('%Y-%m-%d %H:%M:%S', {start_jd} + i * {step}) || '.000000',
                   CASE WHEN a % 5 = 0 THEN 'Juniors' ELSE 'Main' END,
                   printf('pupil%d', a % 2000), printf('Pupil %d', a % 2000),
                   CASE WHEN a % 10 = 0 THEN 'staff' ELSE 'pupil' END,
                   printf('%d%s', a % 6 + 1, substr('ABC', a % 3 + 1, 1)), a % 6 + 1,
                   printf('ipad-%d', a % 800), printf('10.10.%d.%d', a % 250, b % 250), 'subnet',
                   'GET', 'https', host, '', printf('/page/%d', b % 100000), NULL,
                   CASE WHEN host = 'www.google.co.uk' THEN printf('search %d', b % 500) END,
                   action, CASE action WHEN 'allow' THEN 'default' ELSE 'rule' END,
                   CASE action WHEN 'allow' THEN NULL ELSE 'pupils-' || action END,
                   CASE action WHEN 'allow' THEN NULL ELSE substr('social  games   malware ', (b % 3) * 8 + 1, 7) END,
                   NULL, NULL,
                   substr('lesson       break        lunch        after_school ', (a % 4) * 13 + 1, 12),
                   CASE action WHEN 'block' THEN 403 ELSE 200 END, b % 200000, NULL
            FROM v""")
        db.commit()
        print(f"  seeded {offset + count:,} rows ({time.perf_counter() - started:.0f} s)", flush=True)
    # host_rev as the writer makes it (labels reversed); done once per distinct host.
    db.create_function("rev", 1, lambda h: ".".join(reversed(h.split("."))) + ".", deterministic=True)
    db.execute("CREATE TEMP TABLE hr AS SELECT DISTINCT host, rev(host) AS r FROM access_log")
    db.execute("CREATE INDEX temp.hr_host ON hr(host)")
    db.execute("UPDATE access_log SET host_rev = (SELECT r FROM hr WHERE hr.host = access_log.host), "
               "period = trim(period), list_name = trim(list_name)")  # fmt: skip
    db.commit()
    for name, sql in indexes:
        db.execute(sql)
        db.commit()
        print(f"  index {name} ({time.perf_counter() - started:.0f} s)", flush=True)
    db.execute("ANALYZE")
    db.commit()
    db.close()
    rebuild_rollups(path)


def rebuild_rollups(path: Path) -> None:
    started = time.perf_counter()
    engine = make_engine(f"sqlite:///{path}")
    hours = rebuild_all(engine)
    engine.dispose()
    print(f"  dashboard counts rebuilt: {hours} hours in {time.perf_counter() - started:.0f} s", flush=True)


def timed(label: str, run, goal: float | None = GOAL_MS) -> None:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(5):
        start = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - start) * 1000)
    first, median = times[0], statistics.median(times[1:])
    verdict = "" if goal is None else ("  ok" if median <= goal else "  SLOW")
    goal_text = "" if goal is None else f" (goal ≤ {goal:.0f} ms)"
    print(f"{label:58s} first {first:7.1f} ms  warm {median:7.1f} ms{goal_text}{verdict}  [{result}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--db", default="var/bench/console.db")
    parser.add_argument("--reseed", action="store_true")
    args = parser.parse_args()
    path = Path(args.db)
    if args.reseed or not path.exists():
        print(f"seeding {args.rows:,} rows into {path} …")
        seed(path, args.rows)
    engine = make_engine(f"sqlite:///{path}")
    if current_revision(engine) != head_revision():
        print(f"migrating {path} and rebuilding the dashboard counts …")
        upgrade(f"sqlite:///{path}")
        rebuild_rollups(path)
    with engine.connect() as c:
        total = c.exec_driver_sql("SELECT max(id) FROM access_log").scalar()
        counts = c.exec_driver_sql("SELECT count(*) FROM access_rollup").scalar()
    print(f"access_log rows: {total:,}  dashboard count rows: {counts:,}")
    now = datetime.now(ZONE)
    this_morning = now.replace(hour=8, minute=0, second=0, microsecond=0)
    with Session(engine) as session:
        def page(**kw):  # type: ignore[no-untyped-def]
            rows, more = log_queries.page(session, LogFilter(**kw), ZONE)
            return f"{len(rows)} rows, more={more}"

        timed("log page 1, no filter, newest first", lambda: page())
        timed("log page 200, no filter", lambda: page(page=200))
        timed("filter person", lambda: page(person="pupil42"))
        timed("filter person + blocked", lambda: page(person="pupil42", action="block"))
        timed("filter class 5B, last 24 h", lambda: page(school_class="5B", since=(now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")))
        timed("filter group staff", lambda: page(group="staff"))
        timed("filter device", lambda: page(device="ipad-7"))
        timed("filter domain tiktok.com (and subdomains)", lambda: page(domain="tiktok.com"))
        timed("filter list social, blocked", lambda: page(list_name="social", action="block"))
        timed("filter action flag", lambda: page(action="flag"))
        timed("filter site Juniors, time range one day", lambda: page(site="Juniors", since=(now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"), until=(now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")))
        timed("sort by domain", lambda: page(sort="domain"))
        timed("sort by person, filter blocked", lambda: page(sort="person", action="block"))
        timed("person timeline (this morning's day)",
              lambda: f"{len(log_queries.timeline(session, 'pupil42', this_morning.date(), ZONE)[0])} rows")
        for days in (1, 7, 30, 90):
            timed(f"dashboard, {days} day(s)",
                  lambda d=days: f"{sum(b for _, b, _ in log_queries.dashboard(session, ZONE, days=d).over_time):,}"
                                 " blocked")  # fmt: skip
        timed("dashboard, 30 days, one site",
              lambda: f"{len(log_queries.dashboard(session, ZONE, days=30, site='Juniors').top_domains)} top domains")
    engine.dispose()


if __name__ == "__main__":
    main()
