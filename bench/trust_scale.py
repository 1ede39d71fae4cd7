"""A trust's access log on PostgreSQL at scale: fill a scratch database with N rows (default 50 M) across sites and
months, time the console's main queries for one site, then a retention run that drops the oldest month.

    .venv/bin/python bench/trust_scale.py [--rows 50000000] [--sites 8] [--days 183] [--keep]
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

A scratch database (`trust_scale_<pid>`) is made through the admin URL, migrated (so the log is partitioned by
day), filled day by day with one `INSERT ... SELECT generate_series` each (rows made by the server, not Python;
the dashboard's hourly counts are recounted per day as the writer would have kept them), and dropped at the end
unless --keep. Printed: load time and rate, table and index size, then for one site the log page, a search by
person, the person's timeline and the dashboard (first run and warm median of 5), and the retention run dropping
the oldest 30 days, beside deleting one day's rows with DELETE for comparison. Goals: every console query
≤ 300 ms (the console bench's goal at 10 M rows on SQLite), retention in seconds whatever the rows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from gateway.store import partitions  # noqa: E402
from gateway.store.engine import make_engine  # noqa: E402
from gateway.store.migrate import upgrade  # noqa: E402
from gateway.store.retention import purge  # noqa: E402
from gateway.store.rollups import hour_of, rebuild  # noqa: E402
from gateway.web import log_queries  # noqa: E402
from gateway.web.log_queries import LogFilter  # noqa: E402

GOAL_MS = 300
ZONE = ZoneInfo("Europe/London")
PEOPLE_PER_SITE = 1500
HOSTS = 2000

# One day's rows: g runs over the global row numbers of the day, so row_ids never repeat. Sites take turns, people
# are per site, hosts are drawn from a skewed set so a few are busy; about 8 % blocked and 2 % flagged.
FILL = """
INSERT INTO {table} (row_id, at, site, username, display_name, group_name, school_class, year_group, device,
    client_ip, identity_source, method, scheme, host, host_rev, path, action, source, rule, list_name, period,
    status, bytes)
SELECT md5(g::text), CAST(:start AS timestamptz) + ((g - CAST(:first AS bigint)) * CAST(:step AS bigint)) * interval '1 microsecond', 'site' || (g % :sites),
       'p' || (g % :sites) || '-' || (g / :sites * 7919 % :people),
       'Pupil ' || (g / :sites * 7919 % :people),
       CASE WHEN g % 10 = 0 THEN 'staff' ELSE 'pupils' END,
       (g % 6 + 1) || (ARRAY['A', 'B', 'C'])[g % 3 + 1], g % 6 + 1,
       'ipad-' || (g % :sites) || '-' || (g * 31 % 600), '10.' || (g % :sites) || '.' || (g % 250) || '.' || (g * 7 % 250),
       'subnet', 'GET', 'https', h.host, h.rev, '/page/' || (g * 13 % 1000), a.action,
       CASE a.action WHEN 'allow' THEN 'default' ELSE 'rule' END,
       CASE a.action WHEN 'allow' THEN NULL ELSE 'pupils-' || a.action END,
       CASE a.action WHEN 'allow' THEN NULL ELSE (ARRAY['social', 'games', 'malware'])[g % 3 + 1] END,
       (ARRAY['lesson', 'break', 'lunch', 'after_school'])[g % 4 + 1],
       CASE a.action WHEN 'block' THEN 403 ELSE 200 END, g * 17 % 200000
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g,
     LATERAL (SELECT 'www.site' || ((g * 2654435761) % :hosts * (g * 40503 % :hosts) / :hosts) || '.example' AS host) AS n,
     LATERAL (SELECT n.host, 'example.site' || substr(n.host, 9, length(n.host) - 16) || '.www.' AS rev) AS h,
     LATERAL (SELECT CASE WHEN g * 7 % 100 < 8 THEN 'block' WHEN g * 7 % 100 < 10 THEN 'flag' ELSE 'allow' END
              AS action) AS a
"""


def scratch(admin_url: str) -> tuple[str, str]:
    name = f"trust_scale_{os.getpid()}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop(admin_url: str, name: str) -> None:
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def fill(url: str, rows: int, sites: int, days: int, today: date) -> None:
    engine = make_engine(url)
    # Up to yesterday: today and the days ahead were made empty by the migration, as at a school.
    first_day = today - timedelta(days=days)
    per_day = rows // days
    started = time.perf_counter()
    made = 0
    for n in range(days):
        day = first_day + timedelta(days=n)
        count = per_day if n < days - 1 else rows - made
        start = datetime.combine(day, datetime.min.time(), UTC)
        values = {"start": start, "first": made, "last": made + count - 1, "step": 86_400_000_000 // max(count, 1),
                  "sites": sites, "people": PEOPLE_PER_SITE, "hosts": HOSTS}  # fmt: skip
        with engine.begin() as connection:
            connection.execute(sa.text("SET LOCAL synchronous_commit = off"))
            # The day's table is filled before it is attached (as a restore would), so its indexes are built by one
            # sort each rather than row by row.
            partitions.ensure_day(connection, day, lambda c, p: c.execute(sa.text(FILL.replace("{table}", p.name)), values))
            rebuild(connection, hour_of(start), hour_of(start) + 24)
        made += count
        if n % 10 == 9 or n == days - 1:
            elapsed = time.perf_counter() - started
            print(f"  {made:>12,} rows, {n + 1:>3} days  {elapsed:7.0f} s  ({made / elapsed:,.0f} rows/s)", flush=True)
    with engine.begin() as connection:
        partitions.ensure_ahead(connection, today)
        connection.execute(sa.text("ANALYZE"))
    engine.dispose()


def sizes(url: str) -> str:
    engine = make_engine(url)
    with engine.connect() as connection:
        heap, total, count = connection.execute(sa.text(
            "SELECT sum(pg_relation_size(inhrelid)), sum(pg_total_relation_size(inhrelid)), count(*) "
            "FROM pg_inherits WHERE inhparent = 'access_log'::regclass"
        )).one()  # fmt: skip
        rollups = connection.scalar(sa.text("SELECT count(*) FROM access_rollup"))
    engine.dispose()
    gib = 1024**3
    return (f"{count} partitions, table {heap / gib:.1f} GiB, with indexes {total / gib:.1f} GiB; "
            f"{rollups:,} dashboard count rows")  # fmt: skip


def explained(session: Session, run: Callable[[], str]) -> str:
    """The statements one run sends, each run again under EXPLAIN (ANALYZE, SUMMARY): how many, and their planning
    and execution times summed, as the server reports them."""
    sent: list[tuple[str, object]] = []

    def record(_conn: object, _cursor: object, statement: str, parameters: object, *_: object) -> None:
        sent.append((statement, parameters))

    engine = session.get_bind()
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    planning = execution = 0.0
    for statement, parameters in sent:
        plan = session.connection().exec_driver_sql(
            f"EXPLAIN (ANALYZE, SUMMARY, FORMAT JSON) {statement}", parameters  # type: ignore[arg-type]
        ).scalar_one()[0]
        planning += plan["Planning Time"]
        execution += plan["Execution Time"]
    return f"{len(sent)} quer{'y' if len(sent) == 1 else 'ies'}: plan {planning:6.1f} ms, run {execution:6.1f} ms"


def timed(label: str, run: Callable[[], str], goal: float | None = GOAL_MS, session: Session | None = None) -> None:
    times = []
    result = ""
    for _ in range(6):
        start = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - start) * 1000)
    first, median = times[0], statistics.median(times[1:])
    verdict = "" if goal is None else ("  ok" if median <= goal else "  SLOW")
    goal_text = "" if goal is None else f" (goal ≤ {goal:.0f} ms)"
    server = f"  {explained(session, run)}" if session is not None else ""
    print(f"{label:52s} first {first:8.1f} ms  warm {median:8.1f} ms{goal_text}{verdict}{server}  [{result}]",
          flush=True)  # fmt: skip


def queries(url: str, site: str, person: str, today: date) -> None:
    engine = make_engine(url)
    # The console's searches as a form sends them (over the last 30 days unless they say otherwise), on the
    # filled data's last day.
    now = datetime.combine(today, datetime.min.time(), UTC) - timedelta(hours=1)
    with Session(engine) as session:
        def page(**kw: str) -> str:
            log_filter = LogFilter.from_args({"site": site, **kw}, ZONE, now=now)
            rows, more = log_queries.page(session, log_filter, ZONE)
            return f"{len(rows)} rows, more={more}"

        def log(label: str, run: Callable[[], str]) -> None:
            timed(label, run, session=session)

        yesterday = (now - timedelta(days=1)).astimezone(ZONE).strftime("%Y-%m-%dT%H:%M")
        for scope, extra in (("30 days", {}), ("all time", {"all_time": "1"})):
            log(f"log page 1, site {site}, {scope}", lambda: page(**extra))
            log(f"log page 20, site {site}, {scope}", lambda: page(page="20", **extra))
            log(f"log page, site {site}, blocked, {scope}", lambda: page(action="block", **extra))
            log(f"search by person {person}, {scope}", lambda: page(person=person, **extra))
            log(f"search by domain www.site7.example, {scope}", lambda: page(domain="www.site7.example", **extra))
        log(f"log page, site {site}, since yesterday", lambda: page(since=yesterday))
        log(f"log page, site {site}, sorted by person, 30 days", lambda: page(sort="person"))
        log(f"person timeline {person}, yesterday",
            lambda: f"{len(log_queries.timeline(session, person, today - timedelta(days=1), ZONE)[0])} rows")
        for days in (1, 7, 30):
            timed(f"dashboard counts, site {site}, {days} day(s)",
                  lambda d=days: f"{sum(b for _, b, _ in log_queries.dashboard(session, ZONE, days=d, site=site).over_time):,} blocked")  # fmt: skip
    engine.dispose()


def retention(url: str, days: int, today: date) -> None:
    engine = make_engine(url)
    now = datetime.combine(today, datetime.min.time(), UTC) + timedelta(hours=12)
    # The period whose cut-off falls at the end of the 30th day: the purge drops exactly the oldest 30 days.
    keep = days - 30
    start = time.perf_counter()
    dropped = purge(engine, keep, now=now)
    took = time.perf_counter() - start
    print(f"retention: {keep} days kept, oldest 30 day partitions dropped: {dropped:,} rows in {took:.2f} s",
          flush=True)  # fmt: skip
    # For comparison, the next day deleted row by row as retention did before partitions.
    with engine.connect() as connection:
        oldest = partitions.day_partitions(connection)[0]
    start = time.perf_counter()
    with engine.begin() as connection:
        deleted = connection.execute(
            sa.text("DELETE FROM access_log WHERE at >= :lo AND at < :hi"), {"lo": oldest.start, "hi": oldest.end}
        ).rowcount
    took = time.perf_counter() - start
    print(f"for comparison, DELETE of one day's rows ({oldest.day}): {deleted:,} rows in {took:.2f} s", flush=True)
    engine.dispose()


def filled_until(url: str) -> date:
    """The day after a kept database's newest row: the "today" it was filled for."""
    engine = make_engine(url)
    with engine.connect() as connection:
        newest = connection.scalar(sa.text("SELECT max(at) FROM access_log"))
    engine.dispose()
    if newest is None:
        raise SystemExit("that database's access log is empty")
    return newest.astimezone(UTC).date() + timedelta(days=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--sites", type=int, default=8)
    parser.add_argument("--days", type=int, default=183, help="days of log, ending today (default about 6 months)")
    parser.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--keep", action="store_true",
                        help="leave the scratch database behind as filled (no retention run) for --reuse")
    parser.add_argument("--reuse", metavar="NAME",
                        help="time the console's queries on a database an earlier --keep left, without filling")
    args = parser.parse_args()
    if args.reuse:
        url = make_url(args.admin_url).set(database=args.reuse).render_as_string(hide_password=False)
        upgrade(url)
        today = filled_until(url)
        print(f"reusing {args.reuse} (filled up to the day before {today}): {sizes(url)}")
        queries(url, "site3", "p3-42", today)
        return
    if args.days <= 31:
        parser.error("--days must be over 31: the retention run drops the oldest 30 days")
    today = datetime.now(UTC).date()
    name, url = scratch(args.admin_url)
    print(f"scratch database {name}: {args.rows:,} rows, {args.sites} sites, {args.days} days up to the day before {today}")
    try:
        upgrade(url)
        start = time.perf_counter()
        fill(url, args.rows, args.sites, args.days, today)
        took = time.perf_counter() - start
        print(f"loaded {args.rows:,} rows in {took:.0f} s ({args.rows / took:,.0f} rows/s, server-side generate_series"
              f" each day's table filled then attached, its indexes built then; dashboard counts recounted per day); {sizes(url)}")  # fmt: skip
        queries(url, "site3", "p3-42", today)
        if not args.keep:
            retention(url, args.days, today)
    finally:
        if args.keep:
            print(f"kept {name}: measure it again with --reuse {name}; drop it with DROP DATABASE \"{name}\"")
        else:
            drop(args.admin_url, name)
            print(f"dropped {name}")


if __name__ == "__main__":
    main()
