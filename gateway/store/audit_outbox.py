"""Audit rows from the proxy (policy loads and refusals): on disk first, then into the database, oldest first.

A row is written to its own spool file before the database is tried, so a database that is away, or a proxy
stopped at that moment, loses nothing: whatever is left is delivered at the next try (`flush`). Called from a
worker thread, never the event loop. Proxy workers share the folder: each delivers the rows it kept, and those a
dead worker left once it has adopted them (`gateway.store.spool`), so no row is inserted twice.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError

from gateway.store.engine import make_engine
from gateway.store.models.audit import AuditEvent
from gateway.store.spool import Spool

log = logging.getLogger(__name__)


class AuditOutbox:
    def __init__(self, db_url: str, spool_dir: str | Path) -> None:
        self.db_url = db_url
        self.spool = Spool(spool_dir)
        self._lock = threading.Lock()
        self.waiting = bool(self.spool.pending())

    def keep(self, row: dict[str, Any]) -> None:
        """Write `row` (from `gateway.store.audit.audit_values`) to disk; `flush` delivers it."""
        self.keep_all([row])

    def keep_all(self, rows: list[dict[str, Any]]) -> None:
        """Write `rows` to disk as one batch (one file, one transaction when delivered)."""
        with self._lock:
            self.spool.write(rows)
            self.waiting = True

    def add(self, row: dict[str, Any]) -> None:
        """Keep `row` and try to deliver everything waiting."""
        self.keep(row)
        self.flush()

    def flush(self) -> int:
        """Deliver spooled rows; returns how many. Rows stay spooled while the database cannot take them."""
        delivered = 0
        with self._lock:
            pending = self.spool.pending()
            if not pending:
                self.waiting = False
                return 0
            # A database host that does not answer must not hold the next try up for minutes.
            connect_args = {"connect_timeout": 5} if self.db_url.startswith("postgres") else {}
            engine = make_engine(self.db_url, connect_args=connect_args)
            try:
                for path in pending:
                    rows = self.spool.read(path)
                    with engine.begin() as connection:
                        connection.execute(insert(AuditEvent), rows)
                    self.spool.remove(path)
                    delivered += len(rows)
            except DBAPIError as exc:
                orig = getattr(exc, "orig", None) or exc
                log.warning("audit rows kept in %s until the database takes them: %s", self.spool.directory,
                            str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__)
            finally:
                engine.dispose()
            self.waiting = bool(self.spool.pending())
        return delivered
