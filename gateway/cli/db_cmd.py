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
@click.option("--site", default="main", show_default=True,
              help="The site (the policy's school.site) given to records written before records carried one.")
def upgrade_cmd(db_url: str, revision: str, site: str) -> None:
    """Create the tables, or bring them up to this version of the gateway."""
    from gateway.store.migrate import upgrade

    upgrade(db_url, revision, site=site)
    click.echo(f"database at {display_url(db_url)} is at revision {_current(db_url)}")
    if _rollups_missing(db_url):
        click.echo("the access log has rows the dashboard's hourly counts do not: run "
                   f"`gateway db rebuild-rollups --db {display_url(db_url)}` (once; it reads the whole log)")  # fmt: skip


@db.command("rebuild-rollups")
@db_option
def rebuild_rollups_cmd(db_url: str) -> None:
    """Recount the dashboard's hourly figures from the whole access log.

    For a database filled before the counts existed, or by other means than the gateway. Safe while the
    gateway runs: a day is recounted at a time, and the log writer waits for that day only.
    """
    import time

    from gateway.store.engine import NotMigrated, require_migrated
    from gateway.store.rollups import rebuild_all

    engine = make_engine(db_url)
    try:
        try:
            require_migrated(engine)
        except NotMigrated as e:
            raise click.ClickException(str(e)) from None
        started = time.perf_counter()
        steps = 0

        def progress(_since, until) -> None:  # type: ignore[no-untyped-def]
            nonlocal steps
            steps += 1
            if steps % 7 == 0:
                click.echo(f"  counted up to {until:%Y-%m-%d %H:%M} UTC ({time.perf_counter() - started:.0f} s)",
                           err=True)  # fmt: skip

        hours = rebuild_all(engine, progress)
    finally:
        engine.dispose()
    click.echo(f"recounted {hours} hours of the access log in {time.perf_counter() - started:.1f} s")


@db.command("partitions")
@db_option
@click.option("--days-ahead", type=click.IntRange(0, 366), default=7, show_default=True,
              help="Make today's partition and this many days' after it.")
@click.option("--day", "days", multiple=True, type=click.DateTime(["%Y-%m-%d"]),
              help="Make this UTC day's partition too (moving its rows out of the default one); repeatable.")
def partitions_cmd(db_url: str, days_ahead: int, days: tuple) -> None:  # type: ignore[type-arg]
    """Make the access log's day partitions ahead, on PostgreSQL (the daily purge does it too)."""
    from datetime import UTC, datetime

    from gateway.store import partitions

    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            if not partitions.is_partitioned(connection):
                raise click.ClickException("this access log is not partitioned (SQLite, or not migrated to 0014)")
            made = partitions.ensure_ahead(connection, datetime.now(UTC).date(), days_ahead)
            made += sum(partitions.ensure_day(connection, day.date()) for day in days)
            known = partitions.day_partitions(connection)
    finally:
        engine.dispose()
    span = f"{known[0].day} to {known[-1].day}" if known else "none"
    click.echo(f"made {made} day partition(s); {len(known)} in all ({span}), and {partitions.DEFAULT}")


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


def _rollups_missing(db_url: str) -> bool:
    """True when the log has rows and the hourly counts none: a database from before the counts existed."""
    from sqlalchemy import select

    from gateway.store.models.access_log import AccessLogEntry
    from gateway.store.models.rollups import AccessRollup

    engine = make_engine(db_url)
    try:
        with engine.connect() as c:
            return (c.scalar(select(AccessLogEntry.id).limit(1)) is not None
                    and c.scalar(select(AccessRollup.hour).limit(1)) is None)  # fmt: skip
    except Exception:  # an older revision asked for: no counts table to look at
        return False
    finally:
        engine.dispose()
