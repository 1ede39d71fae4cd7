"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL, and step down cleanly.

A column added to a model but not to a migration works in tests that call `create_all` and fails at a school
that upgrades: this compares the two the way `alembic revision --autogenerate` would.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gateway.store import models  # noqa: F401  (every table on Base.metadata)
from gateway.store.base import Base
from gateway.store.engine import make_engine
from gateway.store.migrate import alembic_config
from tests.store.databases import db_url, pg_schema_url  # noqa: F401  (fixtures)


def _differences(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_models(db_url: str) -> None:  # noqa: F811
    assert _differences(db_url) == []


def test_every_migration_steps_down_and_up_again(db_url: str) -> None:  # noqa: F811
    from alembic import command

    engine = make_engine(db_url)
    try:
        config = alembic_config(db_url)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
            command.upgrade(config, "head")
    finally:
        engine.dispose()
    assert _differences(db_url) == []
