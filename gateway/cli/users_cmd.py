"""`gateway users`: console accounts (staff only)."""

from __future__ import annotations

import secrets

import click
from sqlalchemy.orm import Session

from gateway.cli.options import db_option
from gateway.store.accounts import AccountError, count_users, create_user, set_sites
from gateway.store.audit import cli_actor, record
from gateway.store.engine import make_engine, require_migrated
from gateway.store.models.users import Role


@click.group("users")
def users() -> None:
    """Console accounts: officer, headteacher, DPO, teacher, IT."""


def add_account(db_url: str, username: str, display_name: str, role: str, password: str,
                sites: tuple[str, ...] = ()) -> None:  # fmt: skip
    engine = make_engine(db_url)
    require_migrated(engine)
    try:
        with Session(engine) as session, session.begin():
            user = create_user(session, username, display_name, role, password, sites)
            record(session, cli_actor(), "change", target=f"console_user:{user.username}",
                   detail={"created": True, "role": role, "sites": user.sites})  # fmt: skip
    finally:
        engine.dispose()


def has_accounts(db_url: str) -> bool:
    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
            return count_users(session) > 0
    finally:
        engine.dispose()


@users.command("create-admin")
@db_option
@click.option("--username", default="officer", show_default=True)
@click.option("--name", "display_name", default="E-safety officer", show_default=True)
@click.option("--role", type=click.Choice(["officer", "headteacher", "dpo"]), default="officer", show_default=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="At least 10 characters (asked for when not given).")  # fmt: skip
def create_admin(db_url: str, username: str, display_name: str, role: str, password: str) -> None:
    """Make the first console account (an officer, headteacher or DPO)."""
    try:
        add_account(db_url, username, display_name, role, password)
    except AccountError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"console account {username} ({role}) created")


@users.command("add")
@db_option
@click.argument("username")
@click.option("--name", "display_name", default="", help="Display name (defaults to the username).")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--password", default=None, help="Omit to generate one and print it once.")
@click.option("--site", "sites", multiple=True,
              help="A site (the policy's school.site) whose records the account may see; repeat for several. "
                   "None: every site of the trust.")  # fmt: skip
def add(db_url: str, username: str, display_name: str, role: str, password: str | None, sites: tuple[str, ...]) -> None:
    """Add a staff console account."""
    generated = password is None
    password = password or secrets.token_urlsafe(12)
    try:
        add_account(db_url, username, display_name, role, password, sites)
    except AccountError as e:
        raise click.ClickException(str(e)) from None
    where = f"sites: {', '.join(sorted(set(sites)))}" if sites else "every site"
    click.echo(f"console account {username.lower()} ({role}; {where}) created")
    if generated:
        click.echo(f"password: {password}")


@users.command("sites")
@db_option
@click.argument("username")
@click.option("--site", "sites", multiple=True, help="A site the account may see; repeat for several.")
@click.option("--every-site", is_flag=True, help="A trust-wide account: every site.")
def sites_cmd(db_url: str, username: str, sites: tuple[str, ...], every_site: bool) -> None:
    """Limit an account to some sites of the trust, or let it see every site."""
    if bool(sites) == every_site:
        raise click.UsageError("give --site (one or more) or --every-site")
    engine = make_engine(db_url)
    require_migrated(engine)
    try:
        with Session(engine) as session, session.begin():
            user = set_sites(session, username, sites)
            record(session, cli_actor(), "change", target=f"console_user:{user.username}", detail={"sites": user.sites})
            shown = user.sites or "every site"
    except AccountError as e:
        raise click.ClickException(str(e)) from None
    finally:
        engine.dispose()
    click.echo(f"console account {username.lower()} sees: {shown}")
