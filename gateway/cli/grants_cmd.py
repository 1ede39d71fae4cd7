"""`gateway grants add / list / end`: exceptions made at run time, live in every running proxy within seconds.

The console's unblock and permission workflows write the same store; this is the command-line way in, checked the
same way (a grant must name lists or domains, may never name a list the policy marks unliftable) and audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from pydantic import ValidationError

from gateway.cli.identity_common import open_store, policy_option
from gateway.cli.grant_scope import grant_scope_options, split_items
from gateway.cli.options import db_option
from gateway.cli.policy_cmd import compile_or_exit
from gateway.policy.model import ExceptionGrant
from gateway.policy.store_grants import compile_store_grants
from gateway.store.audit import cli_actor, record
from gateway.store.grants import add_grant, end_grant, grant_id, grants_in_force



@click.group("grants")
def grants() -> None:
    """Exceptions made at run time (unblocks, permissions), followed by every running proxy."""


@grants.command("add")
@db_option
@policy_option
@grant_scope_options
@click.option("--starts", type=click.DateTime(["%Y-%m-%dT%H:%M", "%Y-%m-%d"]), help="From (school-local).")
@click.option("--expires", required=True, type=click.DateTime(["%Y-%m-%dT%H:%M", "%Y-%m-%d"]),
              help="Until (school-local).")  # fmt: skip
@click.option("--reason", required=True)
@click.option("--approved-by", help="Who approved it (the headteacher).")
@click.option("--site", help="The school whose gateway follows it (default: the policy's school.site).")
@click.option("--every-school", is_flag=True,
              help="In a trust's shared store: every school's gateway follows it, not one school's.")  # fmt: skip
def add(db_url: str, policy_path: Path, lists: tuple[str, ...], domains: tuple[str, ...], groups: tuple[str, ...],
        users: tuple[str, ...], classes: tuple[str, ...], year_groups: tuple[int, ...], periods: tuple[str, ...],
        starts: datetime | None, expires: datetime, reason: str, approved_by: str | None, site: str | None,
        every_school: bool) -> None:  # fmt: skip
    """Grant an exception; refused when it names no site, an unknown list or one the policy never lets be lifted.
    It belongs to one school, as the console's do, so in a trust's shared store it never opens a site elsewhere."""
    if site and every_school:
        raise click.UsageError("--site and --every-school: choose one")
    compiled = compile_or_exit(policy_path)
    school = None if every_school else site or compiled.policy.school.site
    zone = compiled.zone
    try:
        grant = ExceptionGrant(
            id="new", lists=split_items(lists) or [], domains=split_items(domains) or [],
            groups=split_items(groups), users=split_items(users), classes=split_items(classes),
            year_groups=list(year_groups) or None, periods=split_items(periods),
            starts=starts.replace(tzinfo=zone) if starts else None,
            expires=expires.replace(tzinfo=zone), reason=reason, approved_by=approved_by,
        )  # fmt: skip
    except ValidationError as exc:
        raise click.ClickException("refused: " + "; ".join(
            ": ".join(filter(None, [".".join(map(str, e["loc"])), e["msg"]])) for e in exc.errors()))  # fmt: skip
    _, problems = compile_store_grants(compiled, [grant])
    if problems:
        raise click.ClickException("refused: " + problems[0].removeprefix("new: "))
    with open_store(db_url) as store, store() as session:
        number = add_grant(session, grant, created_by=cli_actor(), site=school)
        detail = {"command": "grants add", "grant": grant_id(number), "site": school,
                  **grant.model_dump(mode="json", exclude={"id"})}  # fmt: skip
        record(session, cli_actor(), "change", target="grants", detail=detail)
        session.commit()
    where = f"{school}'s gateways" if school else "every school's gateways"
    click.echo(f"{grant_id(number)} added: {where} apply it within seconds")


@grants.command("list")
@db_option
def list_grants(db_url: str) -> None:
    """The grants in force (and those that start later)."""
    with open_store(db_url) as store, store() as session:
        stored, problems = grants_in_force(session, datetime.now(UTC))
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    for item in stored:
        grant = item.grant
        what = ", ".join([*(f"list {n}" for n in grant.lists), *grant.domains])
        who = "; ".join(f"{k}={','.join(map(str, v))}" for k, v in (
            ("group", grant.groups), ("user", grant.users), ("class", grant.classes), ("year", grant.year_groups),
            ("period", grant.periods)) if v) or "everyone"  # fmt: skip
        click.echo(f"{grant.id}\t{what}\t{who}\tuntil {grant.expires.isoformat()}\t{grant.reason}"
                   f"\tapproved by {grant.approved_by or '-'}\t{item.site or 'every school'}")  # fmt: skip


@grants.command("end")
@db_option
@click.argument("grant")
def end(db_url: str, grant: str) -> None:
    """End a grant now, in every running gateway within seconds (GRANT is its number or grant-N)."""
    number = grant.removeprefix("grant-")
    if not number.isdigit():
        raise click.ClickException(f"not a grant: {grant!r} (expected grant-N)")
    with open_store(db_url) as store, store() as session:
        if not end_grant(session, int(number), by=cli_actor()):
            raise click.ClickException(f"grant-{number} is not in force")
        detail = {"command": "grants end", "grant": f"grant-{number}"}
        record(session, cli_actor(), "change", target="grants", detail=detail)
        session.commit()
    click.echo(f"grant-{number} ended")
