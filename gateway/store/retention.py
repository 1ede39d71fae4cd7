"""Retention (automatic deletion after a stated period) and subject-access export of one person's log."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Select, delete, select
from sqlalchemy.orm import Session

from gateway.store.models.access_log import AccessLogEntry
from gateway.store.rollups import after_purge

DEFAULT_RETENTION_DAYS = 90
_PURGE_CHUNK = 20_000

# The columns a subject-access export and a console CSV carry, in order.
EXPORT_COLUMNS = [
    "at", "site", "username", "display_name", "group_name", "school_class", "year_group", "device", "client_ip",
    "method", "scheme", "host", "path", "query", "search_terms", "action", "source", "rule", "list_name",
    "matched", "reason", "period", "status", "bytes", "error",
]  # fmt: skip


def purge(engine: Engine, older_than_days: int, *, now: datetime) -> int:
    """Delete access-log rows older than the period, in chunks so the writer is never held up for long; then
    drop the dashboard's counts for the hours emptied and recount the hour the cut fell in."""
    cutoff = now - timedelta(days=older_than_days)
    total = 0
    while True:
        chunk = select(AccessLogEntry.id).where(AccessLogEntry.at < cutoff).limit(_PURGE_CHUNK)
        with engine.begin() as connection:
            deleted = connection.execute(delete(AccessLogEntry).where(AccessLogEntry.id.in_(chunk))).rowcount
        total += deleted
        if deleted < _PURGE_CHUNK:
            break
    with engine.begin() as connection:
        after_purge(connection, cutoff)
    return total


def row_dict(entry: AccessLogEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in EXPORT_COLUMNS}


def query_rows(engine: Engine, query: Select[tuple[AccessLogEntry]]) -> Iterator[dict[str, Any]]:
    """Rows of a query, streamed in chunks through a session of their own (it outlives a web request)."""
    with Session(engine) as session:
        for entry in session.scalars(query.execution_options(yield_per=2000)):
            yield row_dict(entry)


def person_rows(engine: Engine, username: str) -> Iterator[dict[str, Any]]:
    query = select(AccessLogEntry).where(AccessLogEntry.username == username)
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
