"""`gateway purge` and `gateway export-person`: retention and subject access."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from gateway.cli.options import db_option
from gateway.store.audit import cli_actor, record
from gateway.store.engine import NotMigrated, make_engine, require_migrated
from gateway.store.retention import DEFAULT_RETENTION_DAYS, csv_lines, json_document, person_rows, purge


def _engine(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    try:
        require_migrated(engine)
    except NotMigrated as e:
        raise click.ClickException(str(e)) from None
    return engine


@click.command("purge")
@db_option
@click.option("--older-than", "days", type=click.IntRange(min=1), default=DEFAULT_RETENTION_DAYS, show_default=True,
              help="Delete access-log rows older than this many days.")  # fmt: skip
def purge_cmd(db_url: str, days: int) -> None:
    """Delete access-log rows past the retention period (the proxy also does this daily)."""
    engine = _engine(db_url)
    deleted = purge(engine, days, now=datetime.now(UTC))
    record(engine, cli_actor(), "purge", target="access_log", detail={"older_than_days": days, "deleted": deleted})
    engine.dispose()
    click.echo(f"deleted {deleted} access-log rows older than {days} days")


@click.command("export-person")
@db_option
@click.argument("username")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="File to write (default: standard output).")  # fmt: skip
def export_person_cmd(db_url: str, username: str, fmt: str, output: str | None) -> None:
    """Export everything the access log holds about one person (subject-access request)."""
    engine = _engine(db_url)
    username = username.strip().lower()
    record(engine, cli_actor(), "export_person", target=f"person:{username}", detail={"format": fmt})
    rows = person_rows(engine, username)
    chunks = json_document(username, rows, exported_at=datetime.now(UTC)) if fmt == "json" else csv_lines(rows)
    out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        for chunk in chunks:
            out.write(chunk)
    finally:
        if output:
            out.close()
    engine.dispose()
