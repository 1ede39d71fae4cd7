"""A store of the benchmark's own: a SQLite file in its folder, or a fresh database on a PostgreSQL server, dropped
at the end, so a bench never writes into anyone's data.

``--db sqlite`` (a file in the run's folder); ``--db postgresql`` (the local server, ``postgres@127.0.0.1:5432``,
as the tests use it); ``--db postgresql://user@host:port/db`` (that server; ``db`` is only where the new database
is created from).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from gateway.store.engine import normalise_url

LOCAL_POSTGRESQL = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def bench_store(spec: str, folder: Path) -> Iterator[str]:
    """The SQLAlchemy URL of the bench's store (see the module's docstring)."""
    if spec == "sqlite":
        yield f"sqlite:///{folder / 'access.db'}"
        return
    import psycopg
    from psycopg import sql

    server = make_url(normalise_url(LOCAL_POSTGRESQL if spec == "postgresql" else spec))
    admin = psycopg.connect(
        host=server.host, port=server.port or 5432, user=server.username, password=server.password,
        dbname=server.database or "postgres", autocommit=True, connect_timeout=5,
    )  # fmt: skip
    name = f"gateway_bench_{uuid.uuid4().hex[:12]}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()
