"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL, and step down cleanly.

A column added to a model but not to a migration works in tests that call `create_all` and fails at a school
that upgrades: this compares the two the way `alembic revision --autogenerate` would.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import UniqueConstraint

from gateway.store import models  # noqa: F401  (every table on Base.metadata)
from gateway.store.base import Base
from gateway.store.engine import make_engine
from gateway.store.migrate import alembic_config
from gateway.store.partitions import is_partition_table
from tests.store.databases import db_url, pg_schema_url  # noqa: F401  (fixtures)


def _differences(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            opts = {"compare_type": True, "include_name": _not_a_partition}
            context = MigrationContext.configure(connection, opts=opts)
            differences = compare_metadata(context, Base.metadata)
            if connection.dialect.name == "postgresql":
                differences = [d for d in differences if not _row_id_with_partition_key(d)]
            return differences
    finally:
        engine.dispose()


def _not_a_partition(name: str | None, type_: str, parent_names: object) -> bool:
    """The access log's day partitions on PostgreSQL (`gateway.store.partitions`) are tables no model describes:
    the model is the parent, and a partition's columns and indexes are the parent's by construction."""
    return not (type_ == "table" and name is not None and is_partition_table(name))


def _row_id_with_partition_key(difference: object) -> bool:
    """On PostgreSQL a partitioned table's unique keys must hold its partition column, so the access log's row_id
    is unique with `at` there (migration 0014) where the model, for SQLite, says row_id alone. Only that pair."""
    if not isinstance(difference, tuple) or len(difference) != 2:
        return False
    kind, constraint = difference
    if not isinstance(constraint, UniqueConstraint) or constraint.table.name != "access_log":
        return False
    columns = [c.name for c in constraint.columns]
    return (kind, columns) in (("remove_constraint", ["row_id", "at"]), ("add_constraint", ["row_id"]))


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
