"""Alembic, driven from code: the migration scripts ship inside the package."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from gateway.store.engine import make_engine, normalise_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Alembic's INFO lines ("Context impl SQLiteImpl") would land in mitmdump's event log at every start.
logging.getLogger("alembic").setLevel(logging.WARNING)


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # Alembic's ini interpolation treats % specially; URL-encoded passwords contain it.
        config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str, revision: str = "head", *, site: str | None = None) -> None:
    """Migrate; rows written before records carried a site are given `site` ("main" when None)."""
    engine = make_engine(url)
    try:
        config = alembic_config(url)
        config.attributes["site"] = site
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()
