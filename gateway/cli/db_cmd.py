"""`gateway db`: create and migrate the database."""

from __future__ import annotations

import click

from gateway.cli.options import db_option
from gateway.store.engine import display_url, make_engine


@click.group("db")
def db() -> None:
    """Create and migrate the gateway's database."""


@db.command("upgrade")
@db_option
@click.option("--revision", default="head", show_default=True, help="Alembic revision to upgrade to.")
def upgrade_cmd(db_url: str, revision: str) -> None:
    """Create the tables, or bring them up to this version of the gateway."""
    from gateway.store.migrate import upgrade

    upgrade(db_url, revision)
    click.echo(f"database at {display_url(db_url)} is at revision {_current(db_url)}")


@db.command("current")
@db_option
def current_cmd(db_url: str) -> None:
    """Print the database's revision and the code's."""
    from gateway.store.migrate import head_revision

    current = _current(db_url)
    head = head_revision()
    state = "up to date" if current == head else "needs `gateway db upgrade`"
    click.echo(f"database: {current or '(not migrated)'}  code: {head}  ({state})")


def _current(db_url: str) -> str | None:
    from gateway.store.migrate import current_revision

    engine = make_engine(db_url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()
