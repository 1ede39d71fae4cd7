"""Options several command groups share."""

from __future__ import annotations

from typing import Any

import click

from gateway.store.engine import DEFAULT_DB_URL

db_option = click.option(
    "--db",
    "db_url",
    envvar="GATEWAY_DB",
    default=DEFAULT_DB_URL,
    show_default=True,
    help="Database URL: sqlite:///FILE or postgresql+psycopg://USER@HOST/DB (env GATEWAY_DB).",
)


def record_or_warn(db_url: str, target: str, detail: dict[str, Any]) -> None:
    """Audit a change made to files, not the database: a warning, not a failure, when the store is not there."""
    from gateway.store.audit import cli_actor, record_if_reachable

    why = record_if_reachable(db_url, cli_actor(), "change", target=target, detail=detail)
    if why is not None:
        click.echo(f"warning: not recorded in the audit trail ({why})", err=True)
