"""`gateway console`: the officer's web console, served by waitress."""

from __future__ import annotations

from datetime import timedelta

import click

from gateway.cli.options import db_option
from gateway.store.engine import NotMigrated


@click.command("console")
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8081, show_default=True, type=int)
@click.option("--secret-file", default="var/console-secret", show_default=True, help="Session key file (made once).")
@click.option("--session-minutes", default=30, show_default=True, type=int, help="Idle minutes before sign-out.")
@click.option("--secure-cookies/--no-secure-cookies", default=False,
              help="Mark cookies Secure (when the console is behind HTTPS).")  # fmt: skip
@click.option("--threads", default=4, show_default=True, type=int)
def console(db_url: str, host: str, port: int, secret_file: str, session_minutes: int, secure_cookies: bool,
            threads: int) -> None:  # fmt: skip
    """Serve the console (access log, dashboard, audit trail, JSON API)."""
    from waitress import serve

    from gateway.web.app import ConsoleConfig, create_app

    try:
        app = create_app(ConsoleConfig(db_url=db_url, secret_key_file=secret_file,
                                       session_idle=timedelta(minutes=session_minutes),
                                       secure_cookies=secure_cookies))  # fmt: skip
    except NotMigrated as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"console on http://{host}:{port}/", err=True)
    serve(app, host=host, port=port, threads=threads, ident="gateway-console")
