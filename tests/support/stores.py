"""A migrated store for tests that talk to the database directly."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from gateway.store.engine import make_engine, session_factory
from gateway.store.migrate import upgrade


def migrated(url: str) -> Callable[[], Session]:
    """Migrate the database at `url` and return a session factory on it."""
    upgrade(url)
    return session_factory(make_engine(url))


def in_store(db_url: str) -> Callable[..., object]:
    """Run a store function in its own committed transaction, as the console does."""
    factory = session_factory(make_engine(db_url))

    def run(function: Callable[..., object], *args: object, **kwargs: object) -> object:
        with factory() as session:
            result = function(session, *args, **kwargs)
            session.commit()
            return result

    return run
