"""`gateway reports alerts` and `gateway reports digest`: one pass of what the console's notifier thread does, for
a school that runs it from cron (or wants to see this week's digest now)."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from gateway.cli.identity_common import open_store, policy_option
from gateway.cli.options import db_option
from gateway.notify.alerts import send_due_alerts
from gateway.notify.digest import build_digest, digest_message, due_week, send_digest
from gateway.notify.mail import Mailer
from gateway.notify.report_notifier import AlertSettings, alert_settings
from gateway.policy.loader import PolicyError
from gateway.store.audit import cli_actor, record

smtp_options = [
    click.option("--smtp-host", envvar="GATEWAY_SMTP_HOST", help="SMTP server the mail goes through."),
    click.option("--smtp-port", envvar="GATEWAY_SMTP_PORT", default=25, show_default=True,
                 type=click.IntRange(1, 65535)),  # fmt: skip
    click.option("--mail-from", envvar="GATEWAY_MAIL_FROM", default="gateway@localhost", show_default=True),
    click.option("--console-url", envvar="GATEWAY_PUBLIC_URL", default="http://127.0.0.1:8081", show_default=True,
                 help="The console's address as the officer reaches it: the mails link to reports there."),
]


def _with_smtp(command):  # type: ignore[no-untyped-def]
    for option in reversed(smtp_options):
        command = option(command)
    return command


def _settings(policy_path: Path) -> AlertSettings:
    try:
        return alert_settings(policy_path)
    except (OSError, PolicyError) as exc:
        raise click.ClickException(f"the policy does not load: {exc}") from None


def _mailer(smtp_host: str | None, smtp_port: int, mail_from: str) -> Mailer:
    if not smtp_host:
        raise click.UsageError("give --smtp-host (or GATEWAY_SMTP_HOST) to send mail")
    return Mailer(smtp_host, smtp_port, mail_from)


@click.group("reports")
def reports() -> None:
    """Safeguarding reports: alerts to the e-safety officer and the weekly digest."""


@reports.command("alerts")
@db_option
@policy_option
@_with_smtp
def alerts(db_url: str, policy_path: Path, smtp_host: str | None, smtp_port: int, mail_from: str,
           console_url: str) -> None:  # fmt: skip
    """Mail the high-risk reports waiting for an alert (once per person and category within the window)."""
    settings = _settings(policy_path)
    if not settings.alerts.recipients:
        raise click.ClickException("the policy names no recipients (reports.alerts.recipients)")
    mailer = _mailer(smtp_host, smtp_port, mail_from)
    with open_store(db_url) as sessions:
        done = send_due_alerts(sessions, mailer, settings.alerts, console_url, settings.zone, datetime.now(UTC),
                               actor=cli_actor())  # fmt: skip
    click.echo(f"{done.sent} alerts sent, {done.skipped} within the dedup window (not mailed again)")
    if done.error:
        raise click.ClickException(f"the mail server refused ({done.error}); the alert is kept and tried again on "
                                   "the next run")  # fmt: skip


@reports.command("notices")
@db_option
@policy_option
@_with_smtp
def notices(db_url: str, policy_path: Path, smtp_host: str | None, smtp_port: int, mail_from: str,
            console_url: str) -> None:  # fmt: skip
    """Mail the circumvention notices due (one per person and technique per window, then a summary)."""
    from gateway.notify.incident_notices import send_incident_notices

    settings = _settings(policy_path)
    if not settings.notices.recipients:
        raise click.ClickException("the policy names no recipients (circumvention.notices.recipients, or "
                                   "reports.alerts.recipients)")  # fmt: skip
    mailer = _mailer(smtp_host, smtp_port, mail_from)
    with open_store(db_url) as sessions:
        done = send_incident_notices(sessions, mailer, settings.notices, console_url, settings.zone,
                                     datetime.now(UTC), actor=cli_actor())  # fmt: skip
    click.echo(f"{done.sent} notices sent, {done.summarised} incidents in a summary")
    if done.error:
        raise click.ClickException(f"the mail server refused ({done.error}); the notice is kept and tried again on "
                                   "the next run")  # fmt: skip


@reports.command("digest")
@db_option
@policy_option
@_with_smtp
@click.option("--week", "week", type=click.DateTime(["%Y-%m-%d"]),
              help="First day of the seven the digest covers (default: the latest digest due).")
@click.option("--send", is_flag=True, help="Mail it to the policy's recipients (once per week) instead of printing.")
def digest(db_url: str, policy_path: Path, smtp_host: str | None, smtp_port: int, mail_from: str, console_url: str,
           week: datetime | None, send: bool) -> None:  # fmt: skip
    """Print the weekly digest, or send it."""
    settings = _settings(policy_path)
    now = datetime.now(UTC)
    first_day = week.date() if week else due_week(settings.alerts, settings.zone, now)
    with open_store(db_url) as sessions:
        if not send:
            with sessions() as store:
                subject, body = digest_message(build_digest(store, first_day, settings.zone, console_url),
                                               settings.zone)  # fmt: skip
                # The digest names pupils: printing it is a view of personal data.
                record(store, cli_actor(), "report_digest_viewed", target=f"report-digest:{first_day}")
                store.commit()
            click.echo(f"Subject: {subject}\n\n{body}", nl=False)
            return
        if not settings.alerts.recipients:
            raise click.ClickException("the policy names no recipients (reports.alerts.recipients)")
        mailer = _mailer(smtp_host, smtp_port, mail_from)
        try:
            sent = send_digest(sessions, mailer, settings.alerts.recipients, first_day, settings.zone, console_url,
                               now, actor=cli_actor())  # fmt: skip
        except (OSError, smtplib.SMTPException) as exc:
            raise click.ClickException(f"the mail server refused ({exc}); nothing recorded, run again") from None
    last_day = first_day + timedelta(days=6)
    if not sent:
        raise click.ClickException(f"the digest for {first_day} to {last_day} was sent already")
    click.echo(f"digest for {first_day} to {last_day} sent to {', '.join(settings.alerts.recipients)}")
