"""`gateway users`: console accounts (staff only)."""

from __future__ import annotations

import secrets

import click
from sqlalchemy.orm import Session

from gateway.cli.options import db_option
from gateway.store.accounts import AccountError, count_users, create_user
from gateway.store.audit import cli_actor, record
from gateway.store.engine import make_engine, require_migrated
from gateway.store.models.users import Role


@click.group("users")
def users() -> None:
    """Console accounts: officer, headteacher, DPO, teacher, IT."""


def add_account(db_url: str, username: str, display_name: str, role: str, password: str) -> None:
    engine = make_engine(db_url)
    require_migrated(engine)
    try:
        with Session(engine) as session, session.begin():
            user = create_user(session, username, display_name, role, password)
            record(session, cli_actor(), "change", target=f"console_user:{user.username}",
                   detail={"created": True, "role": role})  # fmt: skip
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
def add(db_url: str, username: str, display_name: str, role: str, password: str | None) -> None:
    """Add a staff console account."""
    generated = password is None
    password = password or secrets.token_urlsafe(12)
    try:
        add_account(db_url, username, display_name, role, password)
    except AccountError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"console account {username.lower()} ({role}) created")
    if generated:
        click.echo(f"password: {password}")
