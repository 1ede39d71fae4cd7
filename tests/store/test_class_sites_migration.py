"""Migration 0015 on a store with class teachers in it, on SQLite and PostgreSQL: each row takes the site of the
teacher's roster entry, a second school's 5B can then be taught alongside, and stepping down keeps one row per
teacher and class name."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from gateway.store.engine import make_engine
from gateway.store.migrate import alembic_config, upgrade
from tests.store.databases import pg_schema_url  # noqa: F401  (fixture)

NOW = "2026-12-01 00:00:00"


@pytest.fixture(params=["sqlite", "postgres"])
def url_at_0014(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'gateway.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("pg_schema_url")[1]
    upgrade(url, "0014_sites")
    engine = make_engine(url)
    with engine.begin() as connection:
        for username, site in (("mrs.k", "oakfield"), ("mr.b", "riverside"), ("ghost", None)):
            connection.execute(sa.text(
                "INSERT INTO person (username, display_name, group_name, roles, active, created_at, updated_at, site) "
                "VALUES (:u, :u, 'staff', '', true, :now, :now, :site)"), {"u": username, "now": NOW, "site": site})
        for username, school_class in (("mrs.k", "5B"), ("mrs.k", "6B"), ("mr.b", "5B"), ("ghost", "1A")):
            connection.execute(sa.text("INSERT INTO class_teacher (username, school_class) VALUES (:u, :c)"),
                               {"u": username, "c": school_class})  # fmt: skip
    engine.dispose()
    return url


def rows(url: str) -> list[tuple[str, ...]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            columns = [c["name"] for c in sa.inspect(connection).get_columns("class_teacher")]
            order = ", ".join(c for c in ("site", "username", "school_class") if c in columns)
            query = sa.text(f"SELECT {order} FROM class_teacher ORDER BY {order}")
            return [tuple(r) for r in connection.execute(query)]
    finally:
        engine.dispose()


def test_class_teachers_take_their_schools_site_and_step_down_to_one_row_per_name(url_at_0014: str) -> None:
    upgrade(url_at_0014)
    assert rows(url_at_0014) == [("", "ghost", "1A"), ("oakfield", "mrs.k", "5B"), ("oakfield", "mrs.k", "6B"),
                                 ("riverside", "mr.b", "5B")]  # fmt: skip
    engine = make_engine(url_at_0014)
    with engine.begin() as connection:
        # Now a teacher can teach both schools' 5B; the old key (username, class) would refuse this row.
        connection.execute(sa.text("INSERT INTO class_teacher (site, username, school_class) "
                                   "VALUES ('riverside', 'mrs.k', '5B')"))  # fmt: skip
    engine.dispose()
    config = alembic_config(url_at_0014)
    engine = make_engine(url_at_0014)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0014_sites")
    engine.dispose()
    assert rows(url_at_0014) == [("ghost", "1A"), ("mr.b", "5B"), ("mrs.k", "5B"), ("mrs.k", "6B")]
