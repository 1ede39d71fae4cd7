"""Options several command groups share."""

from __future__ import annotations

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
