"""Audit rows from the proxy (policy loads and refusals): on disk first, then into the database, oldest first.

A row is written to its own spool file before the database is tried, so a database that is away, or a proxy
stopped at that moment, loses nothing: whatever is left is delivered at the next try (`flush`). Called from a
worker thread, never the event loop.
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

    def add(self, row: dict[str, Any]) -> None:
        """Keep `row` (from `gateway.store.audit.audit_values`) and try to deliver everything waiting."""
        with self._lock:
            self.spool.write([row])
            self.waiting = True
        self.flush()

    def flush(self) -> int:
        """Deliver spooled rows; returns how many. Rows stay spooled while the database cannot take them."""
        delivered = 0
        with self._lock:
            pending = self.spool.pending()
            if not pending:
                self.waiting = False
                return 0
            engine = make_engine(self.db_url)
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
