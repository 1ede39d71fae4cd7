"""The access log on PostgreSQL, partitioned by day (migration 0014): rows logged before the upgrade are kept (and
given a site), rows land in their day's partition or the default one, a day made later takes its rows out of the
default partition, a replayed batch still writes nothing twice, and retention drops whole days."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

import pytest
import sqlalchemy as sa

from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.types import Identity
from gateway.store import partitions
from gateway.store.access_rows import access_row
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.models.access_log import AccessLogEntry
from gateway.store.models.rollups import AccessRollup
from gateway.store.retention import purge
from gateway.store.spool import Spool
from gateway.store.writer import AccessLogWriter
from tests.store.databases import pg_schema_url  # noqa: F401  (fixture)

AMY = Identity(group="pupils", client_ip="10.1.2.3", username="amy")
TODAY = datetime.now(UTC).date()


def row(at: datetime, host: str = "a.example", site: str | None = "north") -> dict:
    decision = Decision(Action.BLOCK, Source.RULE, "test", PeriodKind.LESSON, host, rule="r", list="games")
    return access_row(identity=AMY, decision=decision, instant=at, method="GET", scheme="https", host=host, path="/",
                      query="", status=403, size=1, keep_query=False, site=site)  # fmt: skip


def noon(day: date) -> datetime:
    return datetime.combine(day, time(12), UTC)


def where_rows_are(url: str) -> Counter[str]:
    engine = make_engine(url)
    with engine.connect() as c:
        found = Counter(c.scalars(sa.text("SELECT tableoid::regclass::text FROM access_log")))
    engine.dispose()
    return Counter({name.rpartition(".")[2]: n for name, n in found.items()})


def write(url: str, spool, rows: list[dict]) -> None:  # type: ignore[no-untyped-def]
    writer = AccessLogWriter(url, spool, interval=0.05).start()
    for r in rows:
        writer.submit(r)
    writer.close()
    assert writer.written == len(rows) and writer.rejected == 0


@pytest.fixture
def pg_url(pg_schema_url):  # type: ignore[no-untyped-def]  # noqa: F811
    return pg_schema_url[1]


def test_rows_logged_before_the_upgrade_are_kept_in_their_days_with_a_site(pg_url, tmp_path):
    upgrade(pg_url, "0013_consent_uploads")
    old = [row(noon(TODAY - timedelta(days=40)), site=None), row(noon(TODAY - timedelta(days=3)), site="south")]
    columns = set(AccessLogEntry.__table__.columns.keys())
    engine = make_engine(pg_url)
    with engine.begin() as c:
        c.execute(sa.insert(AccessLogEntry.__table__), [{k: v for k, v in r.items() if k in columns} for r in old])
    engine.dispose()
    upgrade(pg_url, site="north")
    engine = make_engine(pg_url)
    with engine.connect() as c:
        assert partitions.is_partitioned(c)
        days = {p.day for p in partitions.day_partitions(c)}
        sites = sorted(c.scalars(sa.select(AccessLogEntry.site)))
    engine.dispose()
    assert {TODAY - timedelta(days=40), TODAY - timedelta(days=3)} <= days
    assert {TODAY + timedelta(days=n) for n in range(partitions.DAYS_AHEAD + 1)} <= days
    assert sites == ["north", "south"], "a row with no site takes the one `gateway db upgrade --site` names"
    assert where_rows_are(pg_url) == Counter({partitions.name_of(TODAY - timedelta(days=40)): 1,
                                              partitions.name_of(TODAY - timedelta(days=3)): 1})  # fmt: skip


def test_rows_go_to_their_day_or_the_default_and_a_day_made_later_takes_its_rows(pg_url, tmp_path):
    upgrade(pg_url)
    far = TODAY - timedelta(days=20)
    rows = [row(noon(TODAY)), row(noon(far)), row(noon(far) + timedelta(hours=1))]
    write(pg_url, tmp_path / "spool", rows)
    assert where_rows_are(pg_url) == Counter({partitions.name_of(TODAY): 1, partitions.DEFAULT: 2})
    # Replaying a batch already written (the process died before its spool file went) writes nothing twice.
    Spool(tmp_path / "again").write(rows)
    AccessLogWriter(pg_url, tmp_path / "again").start().close()
    engine = make_engine(pg_url)
    with engine.begin() as c:
        assert partitions.ensure_day(c, far) is True
        assert partitions.ensure_day(c, far) is False
    engine.dispose()
    assert where_rows_are(pg_url) == Counter({partitions.name_of(TODAY): 1, partitions.name_of(far): 2})


def test_retention_drops_whole_days_and_their_counts(pg_url, tmp_path):
    upgrade(pg_url)
    engine = make_engine(pg_url)
    old_days = [TODAY - timedelta(days=n) for n in (100, 95, 91)]
    with engine.begin() as c:
        for day in old_days:
            partitions.ensure_day(c, day)
    rows = [row(noon(d)) for d in old_days] + [row(noon(TODAY - timedelta(days=89))), row(noon(TODAY))]
    # One old row in the default partition (no day made for it): deleted row by row.
    rows.append(row(noon(TODAY - timedelta(days=120)), host="default.example"))
    write(pg_url, tmp_path / "spool", rows)
    now = datetime.combine(TODAY, time(15), UTC)
    assert purge(engine, 90, now=now) == 4
    with engine.connect() as c:
        names = {p.name for p in partitions.day_partitions(c)}
        left = sorted(c.scalars(sa.select(AccessLogEntry.at)))
        counted = c.scalar(sa.select(sa.func.sum(AccessRollup.n)).where(AccessRollup.dimension == "period"))
    engine.dispose()
    assert not names & {partitions.name_of(d) for d in old_days}
    assert left == [noon(TODAY - timedelta(days=89)), noon(TODAY)]
    assert counted == 2, "the dashboard's counts of the dropped days went with them"


def test_gateway_db_partitions_makes_days_on_demand(pg_url, tmp_path):
    import os
    import subprocess
    import sys

    from tests.support.policies import ROOT

    upgrade(pg_url)
    far = TODAY - timedelta(days=30)
    write(pg_url, tmp_path / "spool", [row(noon(far))])
    done = subprocess.run([sys.executable, "-m", "gateway", "db", "partitions", "--db", pg_url, "--days-ahead", "10",
                           "--day", far.isoformat()], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "made 4 day partition(s)" in done.stdout
    assert where_rows_are(pg_url) == Counter({partitions.name_of(far): 1})


def test_two_gateways_purging_at_once_both_succeed(pg_url, tmp_path):
    """Every school of a trust purges the one log daily; two at the same moment must not trip over each other."""
    from concurrent.futures import ThreadPoolExecutor

    upgrade(pg_url)
    engine = make_engine(pg_url)
    old_days = [TODAY - timedelta(days=n) for n in range(92, 100)]
    with engine.begin() as c:
        for day in old_days:
            partitions.ensure_day(c, day)
    write(pg_url, tmp_path / "spool", [row(noon(d)) for d in old_days])
    now = datetime.combine(TODAY, time(15), UTC)
    with ThreadPoolExecutor(2) as pool:
        dropped = list(pool.map(lambda _: purge(engine, 90, now=now), range(2)))
    engine.dispose()
    assert sorted(dropped) == [0, len(old_days)]
    assert where_rows_are(pg_url) == Counter()
