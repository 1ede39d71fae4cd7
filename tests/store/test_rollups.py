"""The dashboard's hourly counts: kept by the writer with the rows, counted once on replay, cut by retention,
rebuilt from the log by `gateway db rebuild-rollups`; against a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.types import Identity
from gateway.store.access_rows import access_row
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.models.access_log import AccessLogEntry
from gateway.store.models.rollups import AccessRollup
from gateway.store.retention import purge
from gateway.store.rollups import counts, hour_of, rebuild_all, totals
from gateway.store.spool import Spool
from gateway.store.writer import AccessLogWriter
from gateway.web import log_queries
from tests.store.databases import db_url, pg_schema_url  # noqa: F401
from tests.support.policies import ROOT

LONDON = ZoneInfo("Europe/London")
# A summer Monday: local midnight is 23:00 UTC the day before.
NOW = datetime(2026, 7, 6, 15, 0, tzinfo=LONDON)
AMY = Identity(group="pupil", client_ip="10.1.2.3", username="amy", school_class="5B", year_group=5)
BEN = Identity(group="pupil", client_ip="10.1.2.4", username="ben", school_class="6A", year_group=6)
STAFF = Identity(group="staff", client_ip="10.2.0.1", username="mrs.patel")


def row(who: Identity, action: Action, host: str, at: datetime, *, list_name: str | None = None,
        period: PeriodKind = PeriodKind.LESSON, site: str | None = "Main") -> dict:  # fmt: skip
    decision = Decision(action, Source.RULE, "test", period, host, rule="r", list=list_name)
    return access_row(identity=who, decision=decision, instant=at, method="GET", scheme="https", host=host,
                      path="/", query="", status=200, size=1, keep_query=False, site=site)  # fmt: skip


def sample() -> list[dict]:
    day = NOW.replace(hour=0)
    return [
        row(AMY, Action.BLOCK, "www.tiktok.com", day + timedelta(hours=9, minutes=5), list_name="social"),
        row(AMY, Action.BLOCK, "www.tiktok.com", day + timedelta(hours=9, minutes=50), list_name="social"),
        row(BEN, Action.BLOCK, "www.roblox.com", day + timedelta(hours=10), list_name="games"),
        row(BEN, Action.FLAG, "www.google.co.uk", day + timedelta(hours=10, minutes=1), list_name="search-watch"),
        row(AMY, Action.ALLOW, "www.bbc.co.uk", day + timedelta(hours=11), period=PeriodKind.BREAK),
        row(STAFF, Action.BLOCK, "evil.example", day + timedelta(minutes=30), list_name="malware", site=None),
        # Local yesterday 23:30 (22:30 UTC); and 00:20 local today, which is still yesterday in UTC.
        row(AMY, Action.BLOCK, "www.tiktok.com", day - timedelta(minutes=30), list_name="social"),
        row(BEN, Action.FLAG, "www.google.co.uk", day + timedelta(minutes=20), list_name="search-watch"),
        row(AMY, Action.BLOCK, "old.example", NOW - timedelta(days=40), list_name="social"),
    ]


def write(url: str, spool, rows: list[dict]) -> None:  # type: ignore[no-untyped-def]
    writer = AccessLogWriter(url, spool, batch_size=4, interval=0.05).start()
    for r in rows:
        writer.submit(r)
    writer.close()


def stored(url: str) -> tuple[Counter, list[dict]]:
    engine = make_engine(url)
    with engine.connect() as c:
        kept = totals(c)
        rows = [dict(r._mapping) for r in c.execute(sa.select(AccessLogEntry.__table__))]
    engine.dispose()
    return kept, rows


def test_the_writer_counts_each_row_it_inserts_and_the_dashboard_reads_the_counts(db_url, tmp_path):  # noqa: F811
    rows = sample()
    write(db_url, tmp_path / "spool", rows)
    kept, _ = stored(db_url)
    assert kept == counts(rows)
    engine = make_engine(db_url)
    with Session(engine) as session:
        week = log_queries.dashboard(session, LONDON, days=7, now=NOW)
        today = log_queries.dashboard(session, LONDON, days=1, now=NOW)
        juniors = log_queries.dashboard(session, LONDON, days=7, now=NOW, site="Juniors")
        main = log_queries.dashboard(session, LONDON, days=7, now=NOW, site="Main")
    engine.dispose()
    assert week.over_time[-2:] == [("2026-07-05", 1, 0), ("2026-07-06", 4, 2)], "local days, not UTC days"
    assert today.over_time == [("2026-07-06", 4, 2)]
    assert week.top_domains == [("www.tiktok.com", 3), ("evil.example", 1), ("www.roblox.com", 1)]
    assert week.top_categories == [("social", 3), ("games", 1), ("malware", 1)]
    assert week.by_group == [("pupil", 6), ("staff", 1)]
    assert week.by_class == [("5B", 3), ("6A", 3)]
    assert sum(sum(h.values()) for h in week.hours.values()) == 8, "the row 40 days ago is outside the week"
    assert week.hours[9] == {"lesson": 2} and week.hours[11] == {"break": 1} and week.hours[0] == {"lesson": 2}
    assert juniors.top_domains == [] and main.top_domains[0] == ("www.tiktok.com", 3)
    assert ("evil.example", 1) not in main.top_domains


def test_a_replayed_batch_is_counted_once(db_url, tmp_path):  # noqa: F811
    rows = sample()
    write(db_url, tmp_path / "first", rows[:5])
    # Committed, but the process died before the spool file was removed: the whole batch comes round again.
    Spool(tmp_path / "spool").write(rows)
    AccessLogWriter(db_url, tmp_path / "spool").start().close()
    kept, stored_rows = stored(db_url)
    assert len(stored_rows) == len(rows)
    assert kept == counts(rows)


def test_purge_drops_the_emptied_hours_and_recounts_the_one_it_cuts(db_url, tmp_path):  # noqa: F811
    now = datetime(2026, 7, 6, 15, 20, tzinfo=UTC)
    cutoff = now - timedelta(days=90)
    rows = [
        row(AMY, Action.BLOCK, "a.example", cutoff - timedelta(days=3), list_name="social"),
        row(AMY, Action.BLOCK, "a.example", cutoff - timedelta(minutes=10), list_name="social"),
        row(AMY, Action.BLOCK, "b.example", cutoff + timedelta(minutes=10), list_name="social"),
        row(BEN, Action.ALLOW, "c.example", cutoff + timedelta(minutes=30)),
        row(BEN, Action.FLAG, "d.example", now, list_name="search-watch"),
    ]
    write(db_url, tmp_path / "spool", rows)
    engine = make_engine(db_url)
    # PostgreSQL drops whole UTC days (its day partitions): the row ten minutes before the cut-off waits a day.
    purged = 2 if db_url.startswith("sqlite") else 1
    assert purge(engine, 90, now=now) == purged
    engine.dispose()
    kept, _ = stored(db_url)
    assert kept == counts(rows[purged:])
    assert min(hour for _, _, hour, _, _ in kept) == hour_of(cutoff)


def test_rebuild_rollups_counts_a_log_filled_before_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(url, "0002_identity")
    rows = sample()
    # The log as it was at 0002: without the columns 0004 added.
    added_later = {"port", "sni", "bytes_up", "bytes_down", "duration_ms"}
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(sa.insert(AccessLogEntry.__table__), [{k: v for k, v in r.items() if k not in added_later}
                                                         for r in rows])  # fmt: skip
    engine.dispose()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    upgraded = subprocess.run([sys.executable, "-m", "gateway", "db", "upgrade", "--db", url], capture_output=True,
                              text=True, env=env, timeout=120)  # fmt: skip
    assert upgraded.returncode == 0 and "gateway db rebuild-rollups" in upgraded.stdout
    assert stored(url)[0] == Counter()
    rebuilt = subprocess.run([sys.executable, "-m", "gateway", "db", "rebuild-rollups", "--db", url],
                             capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "recounted" in rebuilt.stdout
    # Rows logged before records carried a site were given "main" by migration 0014.
    rows = [{**r, "site": r["site"] or "main"} for r in rows]
    assert stored(url)[0] == counts(rows)
    # Idempotent, and it drops counts of hours the log no longer has.
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(sa.insert(AccessRollup.__table__), [{"dimension": "host", "action": "block", "hour": 1,
                                                      "site": "", "key": "stale.example", "n": 5}])  # fmt: skip
    rebuild_all(engine)
    engine.dispose()
    assert stored(url)[0] == counts(rows)


def test_rebuild_matches_the_writer_on_postgresql_too(db_url, tmp_path):  # noqa: F811
    rows = sample()
    write(db_url, tmp_path / "spool", rows)
    engine = make_engine(db_url)
    rebuild_all(engine)
    engine.dispose()
    assert stored(db_url)[0] == counts(rows)
