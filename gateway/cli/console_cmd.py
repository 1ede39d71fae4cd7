"""`gateway console`: the officer's web console and the WiFi sign-in portal, served by waitress."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from gateway.cli.options import db_option
from gateway.store.engine import NotMigrated


@click.command("console")
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8081, show_default=True, type=int)
@click.option("--policy", "policy_path", type=click.Path(path_type=Path, dir_okay=False),
              default="policies/default.yaml", show_default=True,
              help="The school's policy: which year groups the portal lets sign in with pictures.")  # fmt: skip
@click.option("--public-url", help="The console's address as devices and browsers reach it (default "
              "http://HOST:PORT/). An https:// address marks cookies Secure.")  # fmt: skip
@click.option("--secret-file", default="var/console-secret", show_default=True, help="Session key file (made once).")
@click.option("--portal-link-key-file", default="var/portal-link-key", show_default=True,
              help="Key the proxy signs the portal's return links with (made once; give the proxy the same).")
@click.option("--session-minutes", default=30, show_default=True, type=int, help="Idle minutes before sign-out.")
@click.option("--secure-cookies/--no-secure-cookies", default=False,
              help="Mark cookies Secure on every request (behind a server that ends HTTPS for the console); they "
                   "are Secure on requests that arrive over HTTPS anyway.")  # fmt: skip
@click.option("--threads", default=4, show_default=True, type=int)
@click.option("--proxy-url", help="The running proxy, e.g. http://127.0.0.1:8080: the filter self-test sends its "
              "requests through it (the proxy must be given this console's --secret-file).")  # fmt: skip
@click.option("--smtp-host", envvar="GATEWAY_SMTP_HOST",
              help="SMTP server that tells unblock requesters the outcome, mails the e-safety officer the "
                   "safeguarding alerts and weekly digest, and the headteacher and officer the circumvention "
                   "notices (no e-mail without one).")
@click.option("--smtp-port", envvar="GATEWAY_SMTP_PORT", default=25, show_default=True, type=click.IntRange(1, 65535))
@click.option("--mail-from", envvar="GATEWAY_MAIL_FROM", default="gateway@localhost", show_default=True,
              help="The From address of those e-mails.")
def console(db_url: str, host: str, port: int, policy_path: Path, public_url: str | None, secret_file: str,
            portal_link_key_file: str, session_minutes: int, secure_cookies: bool, threads: int, proxy_url: str | None,
            smtp_host: str | None, smtp_port: int, mail_from: str) -> None:  # fmt: skip
    """Serve the console (access log, dashboard, audit trail, JSON API) and the sign-in portal."""
    from waitress import serve

    from gateway.notify.mail import Mailer
    from gateway.notify.report_notifier import ReportNotifier
    from gateway.web.app import ConsoleConfig, create_app

    if not policy_path.is_file():
        raise click.BadParameter(f"{policy_path}: no such policy file", param_hint="--policy")
    public_url = public_url or f"http://{host}:{port}/"
    if not public_url.startswith(("http://", "https://")):
        raise click.BadParameter(f"{public_url!r} is not an http:// or https:// address", param_hint="--public-url")
    try:
        app = create_app(ConsoleConfig(
            db_url=db_url, secret_key_file=secret_file, session_idle=timedelta(minutes=session_minutes),
            policy_path=str(policy_path), portal_link_key_file=portal_link_key_file,
            secure_cookies=secure_cookies or public_url.startswith("https://"),
            smtp_host=smtp_host, smtp_port=smtp_port, mail_from=mail_from, proxy_url=proxy_url,
        ))  # fmt: skip
    except NotMigrated as e:
        raise click.ClickException(str(e)) from None
    if smtp_host:
        ReportNotifier(app.extensions["gateway.sessions"], Mailer(smtp_host, smtp_port, mail_from), policy_path,
                       public_url).start()  # fmt: skip
    click.echo(f"console on http://{host}:{port}/ (public address {public_url})", err=True)
    serve(app, host=host, port=port, threads=threads, ident="gateway-console")
