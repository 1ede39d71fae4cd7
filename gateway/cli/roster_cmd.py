"""`gateway roster`: import the school roster from the MIS, and set pupils' portal credentials."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import click
from sqlalchemy import select

from gateway.cli.identity_common import finish_import, load_policy, open_store, policy_option
from gateway.cli.options import db_option
from gateway.identity.credentials import (
    PICTURES, card_token_sha256, hash_secret, new_card_token, new_picture_code, picture_code_text,
)
from gateway.identity.csv_table import CsvImportError
from gateway.identity.directory import import_people
from gateway.identity.people import Person
from gateway.identity.roster_csv import parse_roster
from gateway.store.audit import cli_actor, record
from gateway.store.models.people import PersonRecord


@click.group()
def roster() -> None:
    """The school roster: pupils and staff, their groups, year groups and classes."""


def report_csv_error(exc: CsvImportError) -> NoReturn:
    for problem in exc.problems:
        click.echo(f"error: {exc.path}: {problem}", err=True)
    click.echo("nothing was imported", err=True)
    raise SystemExit(1)


@roster.command("import")
@db_option
@policy_option
@click.option("--dry-run", is_flag=True, help="Check the file and say what would change, change nothing.")
@click.option("--site", help="In a trust's shared store: the file is this school's roster only, so only this "
              "school's people can be marked as left (default: the file is the whole roster).")
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
def import_cmd(db_url: str, policy_path: Path, dry_run: bool, site: str | None, path: Path) -> None:
    """Import a roster CSV exported from the MIS (a header row names the columns).

    Columns: username and group are required; display name (or forename and surname), year group, class,
    date of birth, email and role are read when present; other columns are ignored. People missing from the
    file are marked as left, keeping their history. A bad row stops the import with its line number. Everyone
    imported belongs to --site, or to the policy's school.site.
    """
    people = _read_roster(policy_path, path)
    with open_store(db_url) as store, store() as session:
        summary = import_people(session, people, site=site or load_policy(policy_path).school.site,
                                only_site=site is not None)  # fmt: skip
        finish_import(session, summary, path=path, rows=len(people), noun="people", target="roster",
                      dry_run=dry_run)  # fmt: skip
    if summary.left and not dry_run:
        click.echo("marked as left: " + ", ".join(summary.left))


def import_demo_roster(db_url: str, policy_path: Path, path: Path) -> int:
    """The demo's roster (`gateway run --demo-data`), imported only into a store with nobody in it yet, so a real
    roster is never replaced: how many people were added."""
    people = _read_roster(policy_path, path)
    with open_store(db_url) as store, store() as session:
        if session.scalar(select(PersonRecord.id).limit(1)) is not None:
            return 0
        summary = import_people(session, people)
        finish_import(session, summary, path=path, rows=len(people), noun="people", target="roster", dry_run=False)
    return len(people)


def _person(session, username: str) -> PersonRecord:  # type: ignore[no-untyped-def]
    person = session.scalar(select(PersonRecord).where(PersonRecord.username == username.lower()))
    if person is None or not person.active:
        raise click.ClickException(f"{username!r} is not in the roster (or has left)")
    return person


@roster.command("set-password")
@db_option
@click.argument("username")
@click.password_option(prompt="New portal password")
def set_password(db_url: str, username: str, password: str) -> None:
    """Set the password USERNAME signs in to the WiFi portal with."""
    if len(password) < 8:
        raise click.ClickException("a portal password needs at least 8 characters")
    with open_store(db_url) as store, store.begin() as session:
        person = _person(session, username)
        person.password_hash = hash_secret(password)
        record(session, cli_actor(), "change", target=f"person:{person.username}",
               detail={"command": "roster set-password", "changed": "portal password"})  # fmt: skip
    click.echo(f"portal password set for {username.lower()}")


@roster.command("picture-codes")
@db_option
@click.option("--class", "school_class", help="Every active pupil in this class.")
@click.option("--base-url", default="http://gateway.school/", show_default=True,
              help="The console's address, for the QR card links.")
@click.argument("usernames", nargs=-1)
def picture_codes(db_url: str, school_class: str | None, base_url: str, usernames: tuple[str, ...]) -> None:
    """Give pupils a new picture code and QR card, and print them for the class teacher.

    The old code and card stop working. The QR card encodes the printed link.
    """
    if not school_class and not usernames:
        raise click.UsageError("name pupils or give --class")
    with open_store(db_url) as store, store.begin() as session:
        people = [_person(session, u) for u in usernames]
        if school_class:
            people += session.scalars(
                select(PersonRecord).where(PersonRecord.school_class == school_class, PersonRecord.active)
                .order_by(PersonRecord.display_name)
            ).all()
        for person in people:
            code = new_picture_code()
            token = new_card_token()
            person.picture_code_hash = hash_secret(picture_code_text(code))
            person.card_token_sha256 = card_token_sha256(token)
            pictures = " ".join(f"{PICTURES[p]} {p}" for p in code)
            click.echo(f"{person.display_name} ({person.username}): {pictures}   card: "
                       f"{base_url.rstrip('/')}/portal/card/{token}")
        record(session, cli_actor(), "change", target=f"class:{school_class}" if school_class else "roster",
               detail={"command": "roster picture-codes", "changed": "picture code and QR card",
                       "people": sorted({p.username for p in people})})  # fmt: skip


def _read_roster(policy_path: Path, path: Path) -> list[Person]:
    """The roster's people, checked against the policy's groups; a bad row ends the command with its line."""
    policy = load_policy(policy_path)
    try:
        return parse_roster(path, known_groups=set(policy.groups))
    except CsvImportError as exc:
        report_csv_error(exc)
