"""The access-log writer: rows queued by the proxy, written in batches by one thread.

`submit` never blocks and never raises. When the database is unreachable, batches go to the on-disk spool and are
replayed, oldest first, once it answers again; while anything is spooled new batches queue behind it so the order
holds. Each row carries a `row_id` made when it was queued and the insert ignores duplicates, so replaying a batch
that had in fact been committed writes nothing twice. `close` flushes the queue (to the database, or to the spool).

Nothing waits on the database for long: connections have a connect timeout and a statement timeout, and a guard
cuts a connection the server has stopped answering. While the writer thread does wait, rows past `max_queue` are
spilled to the spool by a second thread rather than held in memory. The daily purge runs in a thread of its own,
in one writer per spool folder (so once per machine however many proxy workers share it): the one holding the
folder's `purge.lock`; if that worker dies another takes the lock, and the purge, over within a minute.
Each row is made storable (`access_rows.storable`) on the way in, so no text in it can make the database refuse it.

The dashboard's hourly counts (`gateway.store.rollups`), the officer's reports (`gateway.store.reports`: a row's
`finding`, which is no column, is spooled with it and read there) and circumvention incidents with the bans the
policy applies at once (`gateway.store.incidents`: the row's `incident`) and the uploads the DPO reviews
(`gateway.store.uploads`: the row's `upload`) are added in the transaction that inserts the rows. A replayed batch is first checked for rows already there, so those are counted once.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from operator import itemgetter
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from gateway.store.access_rows import storable
from gateway.store.engine import StallGuard, make_engine
from gateway.store.incidents import incident_rows, record_incidents
from gateway.store.machine_lock import MachineLock
from gateway.store.models.access_log import AccessLogEntry
from gateway.store.reports import record_findings, reportable_rows
from gateway.store.retention import DailyPurge
from gateway.store.rollups import add_rows
from gateway.store.spool import Spool
from gateway.store.uploads import record_uploads, upload_rows

log = logging.getLogger(__name__)

# row_ids per "which of these are already written?" query on replay.
_ID_CHUNK = 500
# Seconds the server may spend on one statement of a batch, and the writer on one batch before the guard cuts its
# connection (a server that takes the bytes and never answers).
STATEMENT_TIMEOUT = 15.0
STALL_SECONDS = 30.0
# Seconds between a writer's tries at the purge lock while another process holds it.
PURGE_TURN_INTERVAL = 30.0


class RowInserter:
    """Inserts access-log rows through the driver, ignoring rows already written.

    SQLAlchemy's per-row parameter processing cost more CPU than the insert itself, and it holds the GIL the
    proxy's event loop needs. For SQLite a batch goes as few multi-row statements: the sqlite3 module releases
    and retakes the GIL around every statement it steps, and with the event loop busy each retake waits for a
    switch interval, so one statement a row left the writer crawling and the loop handing the GIL over.

    The statements have power-of-two lengths only (`statement_lengths`). sqlite3 keeps a connection's last 128
    prepared statements and a 500-row INSERT compiles to about 2 MB, so statements of every length a batch under
    steady load happens to have grew the writer's memory by some 250 MB; ten lengths hold about 4 MB.
    """

    # SQLite binds at most 32,766 values in one statement.
    ROWS_PER_STATEMENT = 512

    def __init__(self, engine: Engine) -> None:
        self.columns = [c.name for c in AccessLogEntry.__table__.columns if c.name != "id"]
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"the access log supports SQLite and PostgreSQL, not {dialect}")
        self._sqlite = dialect == "sqlite"
        head = f"INSERT INTO access_log ({', '.join(self.columns)}) VALUES "
        # On PostgreSQL the table is partitioned by `at`, so row_id is unique with it (a replay carries the same `at`).
        tail = " ON CONFLICT (row_id) DO NOTHING" if dialect == "sqlite" else " ON CONFLICT (row_id, at) DO NOTHING"
        if self._sqlite:
            one = f"({', '.join('?' * len(self.columns))})"
            lengths = self.ROWS_PER_STATEMENT.bit_length()
            self._sql_for = lru_cache(maxsize=lengths)(lambda n: head + ", ".join([one] * n) + tail)
            self._values = itemgetter(*self.columns)
            self._at = self.columns.index("at")
        else:
            self.sql = head + f"({', '.join(f'%({c})s' for c in self.columns)})" + tail

    def __call__(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        if not self._sqlite:
            connection.exec_driver_sql(self.sql, rows)  # type: ignore[arg-type]
            return
        at, row_values = self._at, self._values
        start = 0
        for length in statement_lengths(len(rows), self.ROWS_PER_STATEMENT):
            chunk = rows[start : start + length]
            start += length
            values: list[Any] = []
            for row in chunk:
                v = row_values(row)
                values += v[:at]
                values.append(_sqlite_time(v[at]))
                values += v[at + 1 :]
            connection.exec_driver_sql(self._sql_for(length), tuple(values))


def statement_lengths(rows: int, most: int) -> list[int]:
    """Rows per INSERT for a batch of `rows`: as many of `most` (a power of two) as fit, then the rest's binary
    digits, largest first; so at most log2(most) + 1 different statements, whatever the batches' lengths."""
    lengths = [most] * (rows // most)
    rest = rows % most
    while rest:
        length = 1 << (rest.bit_length() - 1)
        lengths.append(length)
        rest -= length
    return lengths


def _sqlite_time(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def not_yet_written(connection: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows whose row_id is not in the access log yet."""
    ids = AccessLogEntry.__table__.c.row_id
    present: set[str] = set()
    for start in range(0, len(rows), _ID_CHUNK):
        chunk = [row["row_id"] for row in rows[start : start + _ID_CHUNK]]
        present.update(connection.scalars(select(ids).where(ids.in_(chunk))))
    return [row for row in rows if row["row_id"] not in present] if present else rows


def _is_outage(error: DBAPIError) -> bool:
    """Connection lost, refused or the file locked: worth spooling and retrying, unlike a refused row."""
    return isinstance(error, (OperationalError, InterfaceError)) or error.connection_invalidated


def _brief(error: Exception) -> str:
    orig = getattr(error, "orig", None) or error
    return f"{type(orig).__name__}: {str(orig).splitlines()[0] if str(orig) else ''}"


class AccessLogWriter:
    def __init__(
        self,
        db_url: str,
        spool_dir: str | Path,
        *,
        batch_size: int = 2000,
        interval: float = 0.5,
        retry_interval: float = 2.0,
        retention_days: int | None = None,
        max_queue: int = 10_000,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self.db_url = db_url
        self.batch_size = batch_size
        self.interval = interval
        self.retry_interval = retry_interval
        self.max_queue = max_queue
        self.spool = Spool(spool_dir)
        self.written = 0
        self.spooled = 0
        self.spilled = 0
        self.rejected = 0
        self.rejects = Spool(Path(spool_dir) / "rejected")
        self._engine = make_engine(db_url, statement_timeout=STATEMENT_TIMEOUT)
        self._guard = StallGuard(self._engine, stall_seconds)
        self._insert = RowInserter(self._engine)
        self.retention_days = retention_days
        self.purge: DailyPurge | None = None
        self._purge_lock = MachineLock(Path(spool_dir) / "purge.lock") if retention_days is not None else None
        self._purge_tried = float("-inf")
        # Rows waiting for the thread. Not a queue.Queue: a thread blocked in `get` is woken by every `put`, so each
        # request would cost a thread switch and a handover of the GIL away from the proxy's event loop. The thread
        # sleeps `interval` and takes what has gathered, woken early only for a full batch or by `close`.
        self._rows: deque[dict[str, Any]] = deque()
        # Held while rows are taken from the queue and given a spool number, and while the spill thread writes
        # what it took: so rows reach the database or the spool in the order they were queued.
        self._taking = threading.Lock()
        self._wake = threading.Event()
        self._overflow = threading.Event()
        self._stop = False
        self._down_until = 0.0
        self._away = False
        # Whether the spill thread has said it is spilling, since the database last took a batch.
        self._overflowing = False
        self._thread = threading.Thread(target=self._run, name="access-log-writer", daemon=True)
        self._spill_thread = threading.Thread(target=self._spill_overflow, name="access-log-spill", daemon=True)
        self._closed = False

    def start(self) -> AccessLogWriter:
        self._thread.start()
        self._spill_thread.start()
        self._purge_turn()
        return self

    def submit(self, row: dict[str, Any]) -> None:
        rows = self._rows
        rows.append(row)
        queued = len(rows)
        if queued >= self.batch_size and not self._wake.is_set():
            self._wake.set()
        if queued >= self.max_queue and not self._overflow.is_set():
            self._overflow.set()

    def close(self, timeout: float = 60.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop = True
        self._wake.set()
        self._overflow.set()
        self._thread.join(timeout)
        self._spill_thread.join(timeout)
        # After the writer thread, which may have just taken the purge over.
        if self.purge is not None:
            self.purge.close()
        if self._purge_lock is not None:
            self._purge_lock.release()
        self._guard.close()
        self._engine.dispose()

    @property
    def backlog(self) -> int:
        return len(self._rows)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, number, stopping = self._take()
            try:
                if batch:
                    self._deliver(batch, number)
                elif self.spool.pending() and time.monotonic() >= self._down_until:
                    self._replay()
            except Exception:
                # A bug here must not lose rows or kill the thread; the batch is already spooled or written.
                log.exception("access-log writer")
            self._purge_turn()
        if self.spool.pending():
            self._down_until = 0.0
            self._replay()

    def _purge_turn(self) -> None:
        """Start the daily purge if no other process sharing the spool folder runs it (tried every
        `PURGE_TURN_INTERVAL` while one does)."""
        if self._purge_lock is None or self.purge is not None or self._closed:
            return
        if time.monotonic() - self._purge_tried < PURGE_TURN_INTERVAL:
            return
        self._purge_tried = time.monotonic()
        if self._purge_lock.take():
            assert self.retention_days is not None
            self.purge = DailyPurge(self.db_url, self.retention_days).start()

    def _take(self) -> tuple[list[dict[str, Any]], int, bool]:
        """Up to a batch of rows after at most `interval`, the spool number reserved for them, and whether `close`
        was called and nothing is left."""
        rows = self._rows
        if len(rows) < self.batch_size and not self._stop:
            self._wake.wait(self.interval)
        self._wake.clear()
        # Read before taking: rows queued before `close` are all taken before the thread stops.
        stopping = self._stop
        with self._taking:
            batch = [rows.popleft() for _ in range(min(len(rows), self.batch_size))]
            number = self.spool.reserve() if batch else 0
        return batch, number, stopping and not rows

    def _spill_overflow(self) -> None:
        """While the writer thread waits on the database, move the queue to the spool once it passes `max_queue`,
        so memory stays bounded however long the wait."""
        while True:
            self._overflow.wait()
            # Cleared before spilling, so a `close` or an overflow during the spill is seen on the next pass.
            self._overflow.clear()
            if self._stop:
                return
            spilled = 0
            with self._taking:
                rows = self._rows
                # What is queued now; rows arriving meanwhile wait for the next overflow.
                left = len(rows)
                while left > 0:
                    batch = [rows.popleft() for _ in range(min(left, self.batch_size))]
                    try:
                        self.spool.write(batch)
                    except Exception:
                        # The disk is full or gone: the rows go back, and memory is all that is left to hold them.
                        rows.extendleft(reversed(batch))
                        log.exception("access-log queue could not be spilled to %s", self.spool.directory)
                        break
                    left -= len(batch)
                    spilled += len(batch)
            if spilled and not self._overflowing:
                log.warning("access-log queue passed %d rows while the database was slow or away: spilling to %s",
                            self.max_queue, self.spool.directory)  # fmt: skip
                self._overflowing = True
            self.spilled += spilled

    def _deliver(self, batch: list[dict[str, Any]], number: int) -> None:
        # Rows spooled before this batch go first; rows spilled since it was taken are newer and wait for it.
        if self.spool.pending(before=number) and time.monotonic() >= self._down_until:
            self._replay(before=number)
        if self.spool.pending(before=number) or time.monotonic() < self._down_until:
            self._to_spool(batch, number)
            return
        try:
            self._write(batch)
        except DBAPIError as e:
            self._database_away(e)
            self._to_spool(batch, number)

    def _replay(self, before: int | None = None) -> None:
        for path in self.spool.pending(before):
            rows = self.spool.read(path)
            try:
                self._write(rows, replayed=True)
            except DBAPIError as e:
                self._database_away(e)
                return
            self.spool.remove(path)
            log.info("replayed %d spooled access-log rows from %s", len(rows), path.name)

    def _write(self, rows: list[dict[str, Any]], *, replayed: bool = False) -> None:
        """Insert rows; raises only when the database is away. A row it refuses is set aside, not retried forever."""
        rows = [storable(row) for row in rows]
        try:
            self._insert_rows(rows, replayed)
        except DBAPIError as e:
            if _is_outage(e):
                raise
            for row in rows:
                try:
                    self._insert_rows([row], replayed)
                except DBAPIError as row_error:
                    if _is_outage(row_error):
                        raise
                    self._reject(row, row_error)

    def _insert_rows(self, rows: list[dict[str, Any]], replayed: bool) -> None:
        # A fresh batch's row_ids were made just now, so only a replayed batch can hold rows already written.
        with self._guard, self._engine.begin() as connection:
            if replayed:
                rows = not_yet_written(connection, rows)
            if rows:
                self._insert(connection, rows)
                add_rows(connection, rows)
                # Most batches hold no flag, finding or illegal attempt: one pass over the rows and nothing more.
                reports = reportable_rows(rows)
                if reports:
                    record_findings(connection, reports)
                detections = incident_rows(rows)
                if detections:
                    record_incidents(connection, detections)
                uploads = upload_rows(rows)
                if uploads:
                    record_uploads(connection, uploads)
        self.written += len(rows)
        self._database_back()

    def _reject(self, row: dict[str, Any], error: DBAPIError) -> None:
        self.rejected += 1
        path = self.rejects.write([row])
        log.error("access-log row refused by the database, kept in %s: %s", path, _brief(error))

    def _to_spool(self, batch: list[dict[str, Any]], number: int) -> None:
        self.spool.write(batch, number)
        self.spooled += len(batch)

    def _database_away(self, error: Exception) -> None:
        # Said once when it goes away and once when it is back, not at every retry in between.
        if not self._away:
            log.warning("access-log database unreachable, spooling to %s until it answers: %s", self.spool.directory,
                        _brief(error))  # fmt: skip
        self._away = True
        self._down_until = time.monotonic() + self.retry_interval

    def _database_back(self) -> None:
        self._overflowing = False
        if self._away:
            self._away = False
            log.info("access-log database answers again; replaying what was spooled")
