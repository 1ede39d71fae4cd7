"""The access-log writer against hostile rows and a database that stops answering, on the real PostgreSQL (and
SQLite where the point holds for both): every row is stored, memory stays bounded, and nothing waits for long."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from gateway.store.access_rows import CUT_MARK, storable
from gateway.store.engine import StallGuard, make_engine
from gateway.store.migrate import upgrade
from gateway.store.models.access_log import AccessLogEntry
from gateway.store.spool import Spool
from gateway.store.writer import AccessLogWriter
from tests.store.databases import PG_HOST, PG_PORT, db_url, pg_schema_url  # noqa: F401
from tests.store.test_store_log import row, row_ids
from tests.support.pg_standin import PgStandIn


def stored(url: str, *where: sa.ColumnElement[bool]) -> list[AccessLogEntry]:
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            return list(c.execute(sa.select(AccessLogEntry).where(*where).order_by(AccessLogEntry.id)))
    finally:
        engine.dispose()


def test_a_nul_or_an_over_long_field_cannot_keep_a_row_out_of_the_log(db_url, tmp_path):  # noqa: F811
    """A pupil searches for `%00`-laden terms, sends a 20-letter method and a 300-letter host name: every attempt
    is stored, readable, and found by the officer's search."""
    hiding = row(1, host="www.google.co.uk", path="/search", query="q=how+to+hide%00from+the+filter")
    assert "\x00" in hiding["search_terms"]
    long_method = row(2) | {"method": "PROPFINDPROPFINDPROP"}
    long_host = row(3, host="a" * 250 + ".example.com")
    nul_everywhere = row(4) | {"path": "/x\x00y", "display_name": "Amy\x00P", "reason": "\x00"}
    undecodable = row(5) | {"path": "/caf\udce9"}
    fine = row(6)
    writer = AccessLogWriter(db_url, tmp_path / "spool").start()
    for r in (hiding, long_method, long_host, nul_everywhere, undecodable, fine):
        writer.submit(r)
    writer.close()
    assert writer.rejected == 0 and not writer.rejects.pending()
    assert len(row_ids(db_url)) == 6

    (found,) = stored(db_url, AccessLogEntry.search_terms.contains("hide"))
    assert found.search_terms == "how to hide\\x00from the filter"
    (method,) = stored(db_url, AccessLogEntry.path == "/video/2")
    assert method.method == "PROPFINDPR" + CUT_MARK and len(method.method) == 16
    (host,) = stored(db_url, AccessLogEntry.path == "/video/3")
    assert len(host.host) == 255 and host.host.startswith("aaaa") and host.host.endswith(CUT_MARK)
    assert host.host_rev.startswith("com.example.aaa")
    (nuls,) = stored(db_url, AccessLogEntry.path.startswith("/x"))
    assert (nuls.path, nuls.display_name, nuls.reason) == ("/x\\x00y", "Amy\\x00P", "\\x00")
    (bytes_path,) = stored(db_url, AccessLogEntry.path.startswith("/caf"))
    assert bytes_path.path == "/caf\\udce9"


def test_rows_spooled_by_an_older_version_arrive_with_the_new_columns_empty(db_url, tmp_path):  # noqa: F811
    old = [{k: v for k, v in row(n).items() if k not in {"port", "sni", "bytes_up", "bytes_down", "duration_ms"}}
           for n in range(5)]  # fmt: skip
    Spool(tmp_path / "spool").write(old)
    AccessLogWriter(db_url, tmp_path / "spool").start().close()
    rows = stored(db_url)
    assert [r.row_id for r in rows] == [r["row_id"] for r in old]
    assert {(r.port, r.sni, r.bytes_up, r.duration_ms) for r in rows} == {(None, None, None, None)}
    assert Spool(tmp_path / "spool").pending() == []


def test_storable_leaves_a_clean_row_alone():
    clean = row(1)
    assert storable(clean) is clean


@pytest.fixture
def migrated_pg(pg_schema_url):  # noqa: F811
    _, url = pg_schema_url
    upgrade(url)
    return url


def test_a_server_that_takes_the_bytes_and_never_answers_neither_stalls_nor_fills_memory(migrated_pg, tmp_path):
    """The database stops answering mid-stream (connections open and new ones accepted, nothing comes back).
    `submit` stays instant, the queue in memory stays under its limit (the rest is spilled to disk), and when the
    database answers again every row arrives once, in order."""
    with PgStandIn((PG_HOST, PG_PORT)) as standin:
        writer = AccessLogWriter(standin.url_for(migrated_pg), tmp_path / "spool", batch_size=100, interval=0.05,
                                 retry_interval=0.5, max_queue=500, stall_seconds=2).start()  # fmt: skip
        submitted = []
        slowest = 0.0
        peak = 0

        def send(count: int) -> None:
            nonlocal slowest, peak
            for _ in range(count):
                submitted.append(row(len(submitted)))
                started = time.perf_counter()
                writer.submit(submitted[-1])
                slowest = max(slowest, time.perf_counter() - started)
                peak = max(peak, writer.backlog)
                time.sleep(0.0005)

        send(300)
        deadline = time.monotonic() + 10
        while writer.written < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.written == 300
        standin.black_hole()
        send(6000)
        assert writer.spilled > 0 or writer.spooled > 0
        assert peak <= 2 * 500, f"the queue held {peak} rows"
        assert slowest < 0.2, f"submit took {slowest:.3f} s (the database stalls for 2 s)"
        standin.forward()
        send(300)
        writer.close()
    ids = row_ids(migrated_pg)
    assert len(ids) == len(set(ids)) == 6600
    assert ids == [r["row_id"] for r in submitted], "rows arrive in the order they were queued"
    assert Spool(tmp_path / "spool").pending() == []


def test_a_connection_the_server_stopped_answering_is_cut_by_the_guard(migrated_pg):
    """No read timeout in libpq, and the server's statement_timeout never fires on a server that is not there:
    the guard ends the wait."""
    with PgStandIn((PG_HOST, PG_PORT)) as standin:
        engine = make_engine(standin.url_for(migrated_pg), pool_pre_ping=False, statement_timeout=30)
        guard = StallGuard(engine, 1.0)
        with guard, engine.connect() as c:
            assert c.scalar(sa.text("SHOW statement_timeout")) == "30s"
            assert c.scalar(sa.text("SHOW search_path")).startswith("store_"), "the URL's own options are kept"
        standin.black_hole()
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError, match="closed the connection"), guard, engine.connect() as c:
            c.scalar(sa.text("SELECT 1"))
        assert time.monotonic() - started < 3
        assert guard.cuts == 1
        guard.close()
        engine.dispose()


def test_connecting_to_a_server_that_never_answers_gives_up_and_spools(migrated_pg, tmp_path):
    with PgStandIn((PG_HOST, PG_PORT)) as standin:
        standin.black_hole()
        writer = AccessLogWriter(standin.url_for(migrated_pg), tmp_path / "spool", interval=0.05).start()
        writer.submit(row(1))
        deadline = time.monotonic() + 15
        while not writer.spooled and time.monotonic() < deadline:
            time.sleep(0.1)
        assert writer.spooled == 1, "the connect timed out and the row went to the spool"
        started = time.monotonic()
        standin.forward()
        writer.close()
        assert time.monotonic() - started < 15
    assert len(row_ids(migrated_pg)) == 1


def test_a_purge_held_up_by_a_lock_does_not_hold_back_new_rows(migrated_pg, tmp_path):
    """Someone holds a lock on an old row the daily purge must delete: the purge waits, new rows do not."""
    old = row(0, at=datetime.now(UTC) - timedelta(days=200))
    seeding = AccessLogWriter(migrated_pg, tmp_path / "seed").start()
    seeding.submit(old)
    seeding.close()
    engine = make_engine(migrated_pg)
    holder = engine.connect()
    holder.begin()
    holder.execute(sa.select(AccessLogEntry.id).where(AccessLogEntry.row_id == old["row_id"]).with_for_update())
    try:
        writer = AccessLogWriter(migrated_pg, tmp_path / "spool", interval=0.05, retention_days=90).start()
        time.sleep(0.5)  # the purge has started and is waiting for the lock
        fresh = [row(n) for n in range(1, 50)]
        for r in fresh:
            writer.submit(r)
        deadline = time.monotonic() + 5
        while writer.written < len(fresh) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.written == len(fresh), "new rows are written while the purge waits"
        assert writer.purge is not None and writer.purge.purges == 0
    finally:
        holder.rollback()
        holder.close()
    deadline = time.monotonic() + 10
    while writer.purge.purges == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.close()
    engine.dispose()
    assert writer.purge.purges == 1
    assert row_ids(migrated_pg) == [r["row_id"] for r in fresh]


def test_submit_from_many_threads_while_spilling_loses_nothing(tmp_path):
    """The proxy's event loop is one thread, but a RADIUS or test thread may submit too: spilling and taking
    must never interleave rows."""
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    upgrade(url)
    writer = AccessLogWriter(url, tmp_path / "spool", batch_size=50, interval=0.01, max_queue=100).start()
    made: list[list[dict]] = [[row(n) for n in range(2000)] for _ in range(4)]

    def send(rows: list[dict]) -> None:
        for r in rows:
            writer.submit(r)

    threads = [threading.Thread(target=send, args=(rows,)) for rows in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    ids = row_ids(url)
    assert sorted(ids) == sorted(r["row_id"] for rows in made for r in rows)
    position = {row_id: n for n, row_id in enumerate(ids)}
    for rows in made:
        assert [position[r["row_id"]] for r in rows] == sorted(position[r["row_id"]] for r in rows)
