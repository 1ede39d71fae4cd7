"""Engines, sessions and the migration check for the gateway's database.

SQLite (the default, one file beside the proxy) runs in WAL mode so the console reads while the log writer
writes; PostgreSQL is reached through psycopg 3, with a connect timeout always and a statement timeout and a
`StallGuard` where a caller must never wait long (the proxy's threads).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_DB_URL = "sqlite:///var/gateway.db"
# Seconds to wait for a PostgreSQL connection, its TLS and authentication included; without it a server that
# accepts TCP and never answers holds the caller for good.
CONNECT_TIMEOUT = 5


class NotMigrated(RuntimeError):
    """The database is missing tables or is behind the code's migrations."""


def normalise_url(url: str) -> str:
    """Accept the spellings people type: a bare file path, `postgres://`, `postgresql://`."""
    if "://" not in url:
        return f"sqlite:///{url}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def display_url(url: str) -> str:
    """The URL as it may be printed: without a password."""
    return make_url(normalise_url(url)).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # WAL with NORMAL loses at most the last commits on power loss, never corrupts; the proxy's rate needs it.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # 64 MiB of page cache: the access log has ten indexes, and batches touch pages all over them.
    cursor.execute("PRAGMA cache_size=-65536")
    # Checkpoint every ~64 MiB of WAL rather than 4 MiB: each log batch dirties many index pages.
    cursor.execute("PRAGMA wal_autocheckpoint=16384")
    cursor.close()


def make_engine(url: str = DEFAULT_DB_URL, *, statement_timeout: float | None = None, **kwargs: object) -> Engine:
    """An engine for `url`. `statement_timeout` (seconds, PostgreSQL) has the server end any statement that runs
    longer: a lock held elsewhere must not stall the access-log writer."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)  # type: ignore[arg-type]
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    given = kwargs.pop("connect_args", {})
    connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, **given}  # type: ignore[dict-item]
    if statement_timeout is not None:
        # Added to the URL's own `options` (a schema's search_path, say) rather than replacing them.
        timeout = f"-c statement_timeout={int(statement_timeout * 1000)}"
        options = parsed.query.get("options")
        parsed = parsed.update_query_dict({"options": f"{options} {timeout}" if options else timeout})
    return create_engine(parsed, connect_args=connect_args, **kwargs)  # type: ignore[arg-type]


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def require_migrated(engine: Engine) -> None:
    """Raise NotMigrated, saying what to run, unless the database is at the code's head revision."""
    from gateway.store.migrate import current_revision, head_revision

    url = engine.url.render_as_string(hide_password=True)
    current = current_revision(engine)
    if current != head_revision():
        state = "not migrated" if current is None else f"at revision {current}, behind the code"
        raise NotMigrated(f"database at {url} is {state}: run `gateway db upgrade --db {url}`")


class StallGuard:
    """Cuts the sockets of an engine's PostgreSQL connections when a piece of work (`with guard:`) runs past
    `seconds`.

    libpq has no read timeout, and `statement_timeout` is enforced by the server: a server, or a firewall between,
    that takes the bytes and never answers would hold the caller forever. Shutting the socket down makes the call
    waiting on it fail at once as a lost connection, which callers already treat as an outage. One guard per
    engine, used by one thread at a time; on SQLite it does nothing.
    """

    def __init__(self, engine: Engine, seconds: float) -> None:
        self.seconds = seconds
        self.cuts = 0
        self._active = engine.dialect.name == "postgresql"
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._changed = threading.Condition()
        self._deadline: float | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        if self._active:
            event.listen(engine, "connect", self._track)

    def _track(self, dbapi_connection: Any, _record: object) -> None:
        self._connections.add(dbapi_connection)

    def __enter__(self) -> StallGuard:
        if self._active:
            with self._changed:
                self._deadline = time.monotonic() + self.seconds
                if self._thread is None:
                    self._thread = threading.Thread(target=self._watch, name="db-stall-guard", daemon=True)
                    self._thread.start()
                self._changed.notify()
        return self

    def __exit__(self, *_exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        if self._active:
            with self._changed:
                self._deadline = None

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()

    def _watch(self) -> None:
        with self._changed:
            while not self._closed:
                if self._deadline is None:
                    self._changed.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._changed.wait(left)
                    continue
                self._deadline = None
                # Under the lock: the guarded thread cannot leave its block, and so cannot close a connection
                # whose descriptor could be reused, while the sockets are being cut.
                self._cut()

    def _cut(self) -> None:
        self.cuts += 1
        for connection in list(self._connections):
            if connection.closed:
                continue
            try:
                descriptor = connection.fileno()
            except Exception:  # noqa: BLE001  the driver has given this connection up already
                continue
            try:
                # A duplicate of the descriptor: shutting it down ends the connection the driver is waiting on,
                # and closing it leaves the driver's own descriptor to the driver.
                with socket.socket(fileno=os.dup(descriptor)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue
