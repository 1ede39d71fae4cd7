"""Database fixtures for the store's tests: a migrated SQLite file, and a private schema in the real PostgreSQL.

Each PostgreSQL test gets its own schema (via search_path), so engineers running tests at once never share rows.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade

PG_HOST = "127.0.0.1"
PG_PORT = 5432


def _pg_base_url() -> str | None:
    for user in ("postgres", "root"):
        url = f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/test"
        engine = make_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect():
                return url
        except Exception:
            continue
        finally:
            engine.dispose()
    return None


@pytest.fixture
def pg_schema_url() -> Iterator[tuple[str, str]]:
    """(admin URL, URL whose search_path is a fresh schema) — the schema is dropped afterwards."""
    base = _pg_base_url()
    if base is None:
        message = f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT} (database test, user postgres or root)"
        if os.environ.get("GATEWAY_REQUIRE_PG"):
            pytest.fail(message)
        pytest.skip(message)
    schema = f"store_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield base, f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A migrated database: a SQLite file, then the real PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
    else:
        url = request.getfixturevalue("pg_schema_url")[1]
    upgrade(url)
    return url


class TcpRelay:
    """A TCP relay in front of PostgreSQL that can be cut and restored, as a network outage would."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.create_server(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def down(self) -> None:
        """Close the port and cut every open connection: connects are refused until `up`."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
