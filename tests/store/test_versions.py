"""The store's change counters on SQLite and PostgreSQL: each change raises its own counter by one, a counter
never raised reads 0, and two first changes at once both count."""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session

from gateway.store.engine import make_engine
from gateway.store.versions import GRANTS, REQUESTS, bump, versions
from tests.store.databases import db_url, pg_schema_url  # noqa: F401 - fixtures


def test_each_change_raises_its_own_counter(db_url: str) -> None:  # noqa: F811
    engine = make_engine(db_url)
    with Session(engine) as session:
        assert versions(session, (GRANTS, REQUESTS)) == {GRANTS: 0, REQUESTS: 0}
        bump(session, REQUESTS)
        bump(session, REQUESTS)
        session.commit()
        bump(session, REQUESTS)
        bump(session, GRANTS)
        session.commit()
        assert versions(session, (GRANTS, REQUESTS)) == {GRANTS: 1, REQUESTS: 3}
    engine.dispose()


def test_first_changes_at_once_both_count(db_url: str) -> None:  # noqa: F811
    engine = make_engine(db_url)
    barrier, errors = threading.Barrier(4), []

    def change() -> None:
        try:
            with Session(engine) as session:
                barrier.wait()
                bump(session, REQUESTS)
                session.commit()
        except Exception as exc:  # the test reports it below
            errors.append(exc)

    threads = [threading.Thread(target=change) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with Session(engine) as session:
        assert not errors and versions(session, (REQUESTS,)) == {REQUESTS: 4}
    engine.dispose()
