"""The access-log store against a real SQLite file and the real PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from gateway.content.search_terms import search_terms
from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.types import Identity
from gateway.store.access_rows import access_row
from gateway.store.audit import record
from gateway.store.engine import NotMigrated, make_engine, require_migrated
from gateway.store.models.access_log import AccessLogEntry
from gateway.store.models.audit import AuditEvent
from gateway.store.retention import csv_lines, json_document, person_rows, purge
from gateway.store.spool import Spool
from gateway.store.writer import AccessLogWriter
from tests.store.databases import PG_HOST, PG_PORT, TcpRelay, db_url, pg_schema_url  # noqa: F401

AMY = Identity(group="pupils", client_ip="10.1.2.3", username="amy", display_name="Amy P", school_class="5B",
               year_group=5, device="ipad-07")  # fmt: skip
BLOCK = Decision(Action.BLOCK, Source.RULE, "social media in lessons", PeriodKind.LESSON, "www.tiktok.com",
                 rule="pupils-social", list="social", matched="tiktok.com")  # fmt: skip


def row(n: int = 0, *, who: Identity = AMY, at: datetime | None = None, host: str = "www.tiktok.com",
        query: str = "", keep_query: bool = False, path: str | None = None) -> dict:  # fmt: skip
    return access_row(
        identity=who, decision=BLOCK, instant=at or datetime.now(UTC), method="GET", scheme="https", host=host,
        path=path or f"/video/{n}", query=query, status=403, size=512, keep_query=keep_query, site="St Mary's",
    )  # fmt: skip


def row_ids(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            return list(c.scalars(sa.select(AccessLogEntry.row_id).order_by(AccessLogEntry.id)))
    finally:
        engine.dispose()


def test_gateway_refuses_an_unmigrated_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    with pytest.raises(NotMigrated, match=r"not migrated: run `gateway db upgrade --db sqlite:///.*fresh.db`"):
        require_migrated(make_engine(url))


def test_every_row_arrives_with_the_dfe_fields(db_url, tmp_path):
    writer = AccessLogWriter(db_url, tmp_path / "spool", batch_size=500, interval=0.05).start()
    submitted = [row(n) for n in range(2000)]
    submitted.append(row(9999, host="www.google.co.uk", path="/search", query="q=how+to+get+round+the+filter&hl=en"))
    for r in submitted:
        writer.submit(r)
    writer.close()
    assert row_ids(db_url) == [r["row_id"] for r in submitted]
    engine = make_engine(db_url)
    with engine.connect() as c:
        search = c.execute(sa.select(AccessLogEntry).where(AccessLogEntry.host == "www.google.co.uk")).one()
    engine.dispose()
    assert (search.username, search.group_name, search.device, search.client_ip) == ("amy", "pupils", "ipad-07",
                                                                                     "10.1.2.3")  # fmt: skip
    assert (search.action, search.rule, search.list_name, search.period) == ("block", "pupils-social", "social",
                                                                             "lesson")  # fmt: skip
    # Privacy default drops the query string, but DfE wants the search term.
    assert search.query is None and search.search_terms == "how to get round the filter"
    assert search.at.tzinfo is not None and search.site == "St Mary's"


def test_replay_after_a_partial_failure_writes_nothing_twice(db_url, tmp_path):
    batch = [row(n) for n in range(100)]
    # The first half was committed, but the process died before the spool file was removed.
    first = AccessLogWriter(db_url, tmp_path / "other-spool").start()
    for r in batch[:50]:
        first.submit(r)
    first.close()
    Spool(tmp_path / "spool").write(batch)
    AccessLogWriter(db_url, tmp_path / "spool").start().close()
    assert row_ids(db_url) == [r["row_id"] for r in batch]
    assert Spool(tmp_path / "spool").pending() == []


def test_rows_spooled_while_the_database_is_away_arrive_once_when_it_is_back(pg_schema_url, tmp_path):
    """Point the URL at a closed port, then back at PostgreSQL: every row arrives, once."""
    from gateway.store.migrate import upgrade

    _, url = pg_schema_url
    upgrade(url)
    relay = TcpRelay((PG_HOST, PG_PORT))
    relayed = url.replace(f":{PG_PORT}/", f":{relay.port}/")
    relay.up()
    writer = AccessLogWriter(relayed, tmp_path / "spool", batch_size=50, interval=0.05, retry_interval=0.2).start()
    submitted = []

    def send(count: int) -> None:
        for _ in range(count):
            submitted.append(row(len(submitted)))
            writer.submit(submitted[-1])
            time.sleep(0.001)

    send(300)
    relay.down()
    send(300)
    # A connection the relay cut mid-batch may take the writer's stall guard (30 s) to give up on, on a loaded
    # machine; what matters is that the rows go to the spool, not how soon.
    deadline = time.monotonic() + 45
    while not writer.spool.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.spool.pending(), "rows should be spooled while PostgreSQL is unreachable"
    relay.up()
    send(300)
    writer.close()
    relay.down()
    ids = row_ids(url)
    assert len(ids) == len(set(ids)) == 900
    assert ids == [r["row_id"] for r in submitted], "spooled rows are replayed in order, before later rows"
    assert writer.spool.pending() == []


def test_clean_shutdown_while_away_spools_and_the_next_start_replays(pg_schema_url, tmp_path):
    from gateway.store.migrate import upgrade

    _, url = pg_schema_url
    upgrade(url)
    relay = TcpRelay((PG_HOST, PG_PORT))  # never brought up: a closed port
    closed = url.replace(f":{PG_PORT}/", f":{relay.port}/")
    away = AccessLogWriter(closed, tmp_path / "spool").start()
    submitted = [row(n) for n in range(250)]
    for r in submitted:
        away.submit(r)
    away.close()
    assert row_ids(url) == [] and away.spooled == 250
    AccessLogWriter(url, tmp_path / "spool").start().close()
    assert row_ids(url) == [r["row_id"] for r in submitted]


def test_a_row_the_database_refuses_is_set_aside_not_retried_forever(db_url, tmp_path):
    bad = row(1) | {"group_name": None}
    good = [row(n) for n in range(10)]
    writer = AccessLogWriter(db_url, tmp_path / "spool").start()
    for r in [*good[:5], bad, *good[5:]]:
        writer.submit(r)
    writer.close()
    assert row_ids(db_url) == [r["row_id"] for r in good]
    assert writer.rejected == 1 and len(writer.rejects.pending()) == 1


def test_retention_purge_and_subject_access_export(db_url, tmp_path):
    now = datetime.now(UTC)
    ben = Identity(group="staff", username="ben")
    rows = [row(1, at=now - timedelta(days=200)), row(2, at=now - timedelta(days=91)),
            row(3, at=now - timedelta(days=5)), row(4, at=now - timedelta(hours=1), query="x=1"),
            row(5, who=ben, at=now)]  # fmt: skip
    rows[3] = row(4, at=now - timedelta(hours=1), host="=cmd|'/c calc'!A1")
    writer = AccessLogWriter(db_url, tmp_path / "spool").start()
    for r in rows:
        writer.submit(r)
    writer.close()
    engine = make_engine(db_url)
    assert purge(engine, 90, now=now) == 2
    exported = list(person_rows(engine, "amy"))
    assert [r["path"] for r in exported] == ["/video/3", "/video/4"]
    table = list(csv.DictReader(io.StringIO("".join(csv_lines(iter(exported))))))
    assert [r["path"] for r in table] == ["/video/3", "/video/4"]
    assert table[1]["host"].startswith("'="), "cells that Excel would run as formulas are defused"
    document = json.loads("".join(json_document("amy", iter(exported), exported_at=now)))
    assert document["subject"] == "amy" and len(document["access_log"]) == 2
    engine.dispose()


def test_nobody_can_change_or_delete_the_audit_trail(db_url):
    engine = make_engine(db_url)
    record(engine, "head", "view_log", target="access_log", detail={"person": "amy"})
    for statement in (sa.update(AuditEvent).values(actor="someone else"), sa.delete(AuditEvent)):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as c:
            c.execute(statement)
    with engine.connect() as c:
        assert c.scalar(sa.select(AuditEvent.actor)) == "head"
    engine.dispose()


@pytest.mark.parametrize(
    ("host", "query", "terms"),
    [
        ("www.google.co.uk", "q=minecraft+cheats&safe=active", "minecraft cheats"),
        ("www.bing.com", "q=vpn", "vpn"),
        ("duckduckgo.com", "q=proxy%20site", "proxy site"),
        ("www.youtube.com", "search_query=skibidi", "skibidi"),
        ("uk.search.yahoo.com", "p=games", "games"),
        ("www.ecosia.org", "q=trees", "trees"),
        ("www.example.com", "q=not+a+search+engine", None),
        ("www.google.com", "hl=en", None),
    ],
)
def test_search_terms(host, query, terms):
    assert search_terms(host, query) == terms
