"""The access log's daily partitions on PostgreSQL: made ahead, and dropped whole when retention has passed them.

On PostgreSQL `access_log` is partitioned by RANGE of `at`, one partition per UTC day (`access_log_p20261201`),
with a DEFAULT partition (`access_log_default`) for any row no day partition takes (a rehearsal clock, a day not
made ahead), so an insert never fails for want of a partition. Making a day whose rows already sit in the default
partition moves them across in the same transaction. Retention drops every day partition wholly before the cut-off:
no row deletes, no dead tuples, no vacuum behind them. SQLite has no partitions; these functions are PostgreSQL only.

A query is planned over every partition its time bounds do not rule out, at about half a millisecond each with the
log's nine indexes: over 100 ms for six months, more than reading a page of rows costs. `windows` cuts a time range
into a few ranges on day boundaries so that each query's plan holds only its own days.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Connection, text

PARENT = "access_log"
DEFAULT = "access_log_default"
# Days made ahead of today by each purge (it runs daily) and by `gateway db partitions`.
DAYS_AHEAD = 7
_DAY_NAME = re.compile(r"^access_log_p(\d{8})$")
# The advisory lock partition changes take: every school of a trust purges the one log, maybe at the same moment.
_LOCK_KEY = 0x6761_7465_7761_7901


@dataclass(frozen=True)
class DayPartition:
    name: str
    day: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.day, time(), UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=1)


def name_of(day: date) -> str:
    return f"access_log_p{day:%Y%m%d}"


def is_partition_table(name: str) -> bool:
    """A table of the access log's partitions, which no model describes (the models know the parent only)."""
    return name == DEFAULT or _DAY_NAME.match(name) is not None


def is_partitioned(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql" and bool(
        connection.scalar(
            text("SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
                 "WHERE c.relname = :t AND c.relnamespace = to_regnamespace(current_schema())::oid"),  # fmt: skip
            {"t": PARENT},
        )
    )


def day_partitions(connection: Connection) -> list[DayPartition]:
    """The access log's day partitions in this schema, oldest first."""
    names = connection.scalars(
        text("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
             "JOIN pg_class p ON p.oid = i.inhparent "
             "WHERE p.relname = :t AND p.relnamespace = to_regnamespace(current_schema())::oid"),  # fmt: skip
        {"t": PARENT},
    )
    found = []
    for name in names:
        match = _DAY_NAME.match(name)
        if match:
            found.append(DayPartition(name, datetime.strptime(match.group(1), "%Y%m%d").date()))
    return sorted(found, key=lambda p: p.day)


def first_day(connection: Connection) -> date | None:
    days = day_partitions(connection)
    return days[0].day if days else None


def _midnight(moment: datetime) -> datetime:
    return datetime.combine(moment.astimezone(UTC).date(), time(), UTC)


def windows(low: datetime | None, high: datetime | None, *, newest_first: bool, now: datetime,
            first: date | None) -> Iterator[tuple[datetime | None, datetime | None]]:  # fmt: skip
    """Consecutive ranges [from, to) covering [low, high) (None: unbounded), in the order asked, on UTC midnights:
    the first is today's (or the last or first day's), and each next one four times the one before, so a reader
    stopping once it has a page plans few partitions and one reading everything makes few queries. `first` is the
    oldest day partition, which stands for `low` when there is none (an unbounded end is left unbounded, for the
    default partition's rows)."""
    floor = low or (datetime.combine(first, time(), UTC) if first else None)
    ceiling = high or _midnight(now) + timedelta(days=1)
    if floor is None or floor >= ceiling:
        yield low, high
        return
    step = timedelta(days=1)
    if newest_first:
        upper, cut = high, _midnight(ceiling - timedelta(microseconds=1))
        while cut > floor:
            yield cut, upper
            upper, cut, step = cut, cut - step, step * 4
        yield low, upper
    else:
        lower, cut = low, _midnight(floor) + timedelta(days=1)
        while cut < ceiling:
            yield lower, cut
            lower, cut, step = cut, cut + step, step * 4
        yield lower, high


def lock(connection: Connection) -> None:
    """Hold the partitions still until the caller's transaction ends (other gateways' purges wait)."""
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})


def create_default(connection: Connection) -> None:
    connection.execute(text(f"CREATE TABLE IF NOT EXISTS {DEFAULT} PARTITION OF {PARENT} DEFAULT"))


def ensure_day(connection: Connection, day: date, fill: Callable[[Connection, DayPartition], None] | None = None) -> bool:
    """Make the day's partition unless it exists, moving its rows out of the default partition; whether made.

    The table is filled before it is attached, so attaching finds the default partition already without them and
    builds the partition's indexes in one sort each. `fill` may add rows of its own then (a bulk load)."""
    partition = DayPartition(name_of(day), day)
    lock(connection)
    exists = connection.scalar(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": partition.name})
    if exists:
        return False
    bounds = {"lo": partition.start, "hi": partition.end}
    connection.execute(text(f"CREATE TABLE {partition.name} (LIKE {PARENT} INCLUDING DEFAULTS)"))
    connection.execute(
        text(f"WITH moved AS (DELETE FROM {DEFAULT} WHERE at >= :lo AND at < :hi RETURNING *) "
             f"INSERT INTO {partition.name} SELECT * FROM moved"),  # fmt: skip
        bounds,
    )
    if fill is not None:
        fill(connection, partition)
    # With the bounds as a constraint first, attaching need not scan the new table to prove them.
    connection.execute(
        text(f"ALTER TABLE {partition.name} ADD CONSTRAINT {partition.name}_bounds "
             f"CHECK (at IS NOT NULL AND at >= '{partition.start.isoformat()}' AND at < '{partition.end.isoformat()}')")  # fmt: skip
    )
    connection.execute(
        text(f"ALTER TABLE {PARENT} ATTACH PARTITION {partition.name} "
             f"FOR VALUES FROM ('{partition.start.isoformat()}') TO ('{partition.end.isoformat()}')")  # fmt: skip
    )
    connection.execute(text(f"ALTER TABLE {partition.name} DROP CONSTRAINT {partition.name}_bounds"))
    return True


def ensure_ahead(connection: Connection, today: date, days: int = DAYS_AHEAD) -> int:
    """Make today's partition and the next `days`; how many were made."""
    return sum(ensure_day(connection, today + timedelta(days=n)) for n in range(days + 1))


def drop_before(connection: Connection, cutoff: datetime) -> list[str]:
    """Drop every day partition that ends at or before the cut-off; the names dropped.

    Rows after the last whole day stay until the next day's purge: retention on PostgreSQL is by whole UTC days."""
    lock(connection)
    dropped: list[str] = []
    for partition in day_partitions(connection):
        if partition.end > cutoff:
            break
        connection.execute(text(f"DROP TABLE {partition.name}"))
        dropped.append(partition.name)
    return dropped
