"""Retention (automatic deletion after a stated period) and subject-access export of one person's log."""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, Select, TableClause, column, delete, select, table, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from gateway.store import partitions
from gateway.store.engine import StallGuard, make_engine
from gateway.store.models.access_log import AccessLogEntry
from gateway.store.rollups import after_purge

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 90
_PURGE_CHUNK = 20_000
_DAY = 24 * 3600.0
# Seconds one chunk of a purge may take: the server ends a statement sooner, the guard a server that stopped
# answering.
_CHUNK_STATEMENT_TIMEOUT = 120.0
_CHUNK_STALL = 180.0

# The columns a subject-access export and a console CSV carry, in order.
EXPORT_COLUMNS = [
    "at", "site", "username", "display_name", "group_name", "school_class", "year_group", "device", "client_ip",
    "method", "scheme", "host", "path", "query", "search_terms", "action", "source", "rule", "list_name",
    "matched", "reason", "period", "status", "bytes", "error", "port", "sni", "bytes_up", "bytes_down",
    "duration_ms",
]  # fmt: skip


def purge(
    engine: Engine, older_than_days: int, *, now: datetime, guard: AbstractContextManager[object] = nullcontext()
) -> int:
    """Delete access-log rows older than the period, in chunks so the writer is never held up for long; then
    drop the dashboard's counts for the hours emptied and recount the hour the cut fell in. `guard` is entered
    around each chunk. On PostgreSQL whole day partitions are dropped instead (`purge_partitions`)."""
    cutoff = now - timedelta(days=older_than_days)
    with guard, engine.connect() as connection:
        partitioned = partitions.is_partitioned(connection)
    if partitioned:
        return purge_partitions(engine, cutoff, today=now.astimezone(UTC).date(), guard=guard)
    return _delete_rows(engine, cutoff, guard, AccessLogEntry.__table__)


def purge_partitions(
    engine: Engine, cutoff: datetime, *, today: date, guard: AbstractContextManager[object] = nullcontext()
) -> int:
    """Drop the day partitions wholly before the cut-off and the default partition's rows before the same day
    boundary (rows after it wait for the next day's purge); then fix the dashboard's counts and make the days
    ahead. The rows dropped."""
    boundary = datetime.combine(cutoff.astimezone(UTC).date(), time(), UTC)
    with guard, engine.begin() as connection:
        partitions.lock(connection)
        expired = [p for p in partitions.day_partitions(connection) if p.end <= boundary]
        total = sum(connection.scalar(text(f"SELECT count(*) FROM {p.name}")) or 0 for p in expired)
        partitions.drop_before(connection, boundary)
    total += _delete_rows(engine, boundary, guard, table(partitions.DEFAULT, column("id"), column("at")))
    with guard, engine.begin() as connection:
        partitions.ensure_ahead(connection, today)
    return total


def _delete_rows(engine: Engine, cutoff: datetime, guard: AbstractContextManager[object], log: TableClause) -> int:
    total = 0
    while True:
        chunk = select(log.c.id).where(log.c.at < cutoff).limit(_PURGE_CHUNK)
        with guard, engine.begin() as connection:
            deleted = connection.execute(delete(log).where(log.c.id.in_(chunk))).rowcount
        total += deleted
        if deleted < _PURGE_CHUNK:
            break
    with guard, engine.begin() as connection:
        after_purge(connection, cutoff)
    return total


class DailyPurge:
    """The proxy's daily purge, in a thread of its own with its own connections: a purge of a term's rows must
    not hold back the access-log rows queued meanwhile. Purges once at start, then daily; retries sooner while
    the database is away."""

    def __init__(self, db_url: str, older_than_days: int, *, retry_interval: float = 60.0) -> None:
        self.older_than_days = older_than_days
        self.retry_interval = retry_interval
        self.purges = 0
        self._failing = False
        self._engine = make_engine(db_url, statement_timeout=_CHUNK_STATEMENT_TIMEOUT)
        self._guard = StallGuard(self._engine, _CHUNK_STALL)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="access-log-purge", daemon=True)

    def start(self) -> DailyPurge:
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop; a chunk being deleted is left to finish (or be cut) in the background."""
        self._stop.set()
        self._thread.join(timeout)
        self._guard.close()
        if not self._thread.is_alive():
            self._engine.dispose()

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            delay = self._purge_once()

    def _purge_once(self) -> float:
        """Purge; seconds until the next try."""
        try:
            deleted = purge(self._engine, self.older_than_days, now=datetime.now(UTC), guard=self._guard)
        except DBAPIError as error:
            if not self._failing:
                reason = str(getattr(error, "orig", None) or error).strip().partition("\n")[0]
                log.warning("retention: purge failed, trying every %.0f s until it works: %s", self.retry_interval,
                            reason)  # fmt: skip
            self._failing = True
            return self.retry_interval
        except Exception:
            log.exception("retention: purge failed")
            return self.retry_interval
        self._failing = False
        self.purges += 1
        if deleted:
            log.info("retention: deleted %d access-log rows older than %d days", deleted, self.older_than_days)
        return _DAY


def row_dict(entry: AccessLogEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in EXPORT_COLUMNS}


def query_rows(engine: Engine, query: Select[tuple[AccessLogEntry]]) -> Iterator[dict[str, Any]]:
    """Rows of a query, streamed in chunks through a session of their own (it outlives a web request)."""
    with Session(engine) as session:
        for entry in session.scalars(query.execution_options(yield_per=2000)):
            yield row_dict(entry)


def person_rows(engine: Engine, username: str, allowed_sites: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
    """A person's rows, of the given sites only (all when none are given)."""
    query = select(AccessLogEntry).where(AccessLogEntry.username == username)
    if allowed_sites:
        query = query.where(AccessLogEntry.site.in_(allowed_sites))
    return query_rows(engine, query.order_by(AccessLogEntry.at, AccessLogEntry.id))


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    # A cell starting with = + - @ is a formula in Excel; a log of hostile URLs must not run one.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow([_text(row[name]) for name in EXPORT_COLUMNS])
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def json_document(username: str, rows: Iterator[dict[str, Any]], *, exported_at: datetime) -> Iterator[str]:
    """A streamed JSON object: who, when exported, and every row."""
    yield json.dumps({"subject": username, "exported_at": exported_at.isoformat()})[:-1] + ', "access_log": ['
    first = True
    for row in rows:
        yield ("" if first else ",") + json.dumps(row, default=lambda v: v.isoformat())
        first = False
    yield "]}"
