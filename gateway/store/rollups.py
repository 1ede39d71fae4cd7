"""Keeping `access_rollup` (see gateway/store/models/rollups.py) in step with the access log.

`add_rows` counts rows just inserted, in the inserting transaction. `rebuild` recounts a span of hours from the
log itself (for rows that arrived another way, or after a purge cut an hour in two). `after_purge` drops the
counts of hours the purge emptied.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, Engine, Integer, cast, delete, func, literal, select, text
from sqlalchemy.dialects import postgresql, sqlite

from gateway.store.models.access_log import AccessLogEntry as Log
from gateway.store.models.rollups import AccessRollup as Rollup

ATTEMPTS = ("block", "flag")
ACTIONS = ("allow", *ATTEMPTS)
# dimension -> the log column it counts; `period` counts every request, the others blocked and flagged ones.
DIMENSIONS = {
    "period": Log.period,
    "group": Log.group_name,
    "class": Log.school_class,
    "list": Log.list_name,
    "host": Log.host,
}
_KEY = ["dimension", "action", "hour", "site", "key"]

Key = tuple[str, str, int, str, str]


def hour_of(at: datetime) -> int:
    return int(at.timestamp()) // 3600


def hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, UTC)


def counts(rows: Iterable[dict[str, Any]]) -> Counter[Key]:
    """What access-log row dicts (as the writer queues them) add to the rollup."""
    counted: Counter[Key] = Counter()
    for row in rows:
        action = row["action"]
        hour = int(row["at"].timestamp()) // 3600
        site = row["site"] or ""
        counted["period", action, hour, site, row["period"] or ""] += 1
        if action != "allow":
            counted["group", action, hour, site, row["group_name"] or ""] += 1
            counted["class", action, hour, site, row["school_class"] or ""] += 1
            counted["list", action, hour, site, row["list_name"] or ""] += 1
            counted["host", action, hour, site, row["host"] or ""] += 1
    return counted


def _upsert(connection: Connection):  # type: ignore[no-untyped-def]
    dialect = sqlite if connection.dialect.name == "sqlite" else postgresql
    statement = dialect.insert(Rollup)
    return statement.on_conflict_do_update(index_elements=_KEY, set_={"n": Rollup.n + statement.excluded.n})


def add_counts(connection: Connection, counted: Counter[Key]) -> None:
    if counted:
        connection.execute(
            _upsert(connection),
            [dict(zip(_KEY, key, strict=True), n=n) for key, n in sorted(counted.items())],
        )


def add_rows(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Count rows the caller has just inserted, in its transaction."""
    add_counts(connection, counts(rows))


def _hour_expression(connection: Connection):  # type: ignore[no-untyped-def]
    if connection.dialect.name == "sqlite":
        # UTC ISO text in SQLite: whole seconds since the epoch, then integer division.
        return cast(func.strftime("%s", Log.at), Integer) // 3600
    return cast(func.floor(func.extract("epoch", Log.at) / 3600), BigInteger)


def rebuild(connection: Connection, first_hour: int, end_hour: int) -> None:
    """Recount hours [first_hour, end_hour) from the access log, in the caller's transaction."""
    if connection.dialect.name == "postgresql":
        # The writer's increments wait until the recount commits, so none lands between the delete and the count.
        connection.execute(text("LOCK TABLE access_rollup IN SHARE ROW EXCLUSIVE MODE"))
    connection.execute(
        delete(Rollup).where(
            Rollup.dimension.in_(DIMENSIONS), Rollup.action.in_(ACTIONS),
            Rollup.hour >= first_hour, Rollup.hour < end_hour,
        )  # fmt: skip
    )
    since, until = hour_start(first_hour), hour_start(end_hour)
    hour = _hour_expression(connection)
    site = func.coalesce(Log.site, "")
    for dimension, column in DIMENSIONS.items():
        actions = ACTIONS if dimension == "period" else ATTEMPTS
        key = func.coalesce(column, "")
        query = (
            select(literal(dimension), Log.action, hour, site, key, func.count())
            .where(Log.action.in_(actions), Log.at >= since, Log.at < until)
            .group_by(Log.action, hour, site, key)
        )
        connection.execute(Rollup.__table__.insert().from_select([*_KEY, "n"], query))


def rebuild_all(engine: Engine, progress: Callable[[datetime, datetime], None] | None = None,
                days_per_step: int = 1) -> int:  # fmt: skip
    """Recount every hour the log holds, a day at a time (each its own transaction, so the writer waits briefly,
    not for the whole rebuild). Counts of hours with no rows left are dropped. Returns the hours recounted."""
    with engine.connect() as connection:
        first, last = connection.execute(select(func.min(Log.at), func.max(Log.at))).one()
    with engine.begin() as connection:
        if first is None:
            connection.execute(delete(Rollup))
            return 0
        for stale in (Rollup.hour < hour_of(first), Rollup.hour > hour_of(last)):
            connection.execute(delete(Rollup).where(Rollup.dimension.in_(DIMENSIONS), Rollup.action.in_(ACTIONS), stale))
    step = 24 * days_per_step
    start, end = hour_of(first), hour_of(last) + 1
    for h in range(start, end, step):
        with engine.begin() as connection:
            rebuild(connection, h, min(h + step, end))
        if progress is not None:
            progress(hour_start(h), hour_start(min(h + step, end)))
    return end - start


def after_purge(connection: Connection, cutoff: datetime) -> None:
    """The purge deleted every row before `cutoff`: drop the hours before it and recount the one it cut."""
    cut = hour_of(cutoff)
    connection.execute(delete(Rollup).where(Rollup.dimension.in_(DIMENSIONS), Rollup.action.in_(ACTIONS),
                                            Rollup.hour < cut))  # fmt: skip
    if cutoff > hour_start(cut):
        rebuild(connection, cut, cut + 1)


def totals(connection: Connection) -> Counter[Key]:
    """Every count, for checks and tests."""
    return Counter({tuple(r[:5]): r[5] for r in connection.execute(select(Rollup.__table__))})  # type: ignore[misc]

