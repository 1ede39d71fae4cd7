"""Engines, sessions and the migration check for the gateway's database.

SQLite (the default, one file beside the proxy) runs in WAL mode so the console reads while the log writer
writes; PostgreSQL is reached through psycopg 3.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_DB_URL = "sqlite:///var/gateway.db"


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


def make_engine(url: str = DEFAULT_DB_URL, **kwargs: object) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)  # type: ignore[arg-type]
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)  # type: ignore[arg-type]


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
