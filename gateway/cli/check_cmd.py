"""`gateway check`: the officer's "why was this blocked?" tool, deciding exactly as the proxy does."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.decisions.engine import InvalidTarget, decide_target
from gateway.identity.types import Identity, IdentitySource
from gateway.cli.policy_cmd import DEFAULT_POLICY, compile_or_exit
from gateway.identity.directory import identity_for_user
from gateway.identity.ages import age_of
from gateway.cli.options import db_option
from gateway.store.engine import NotMigrated, make_engine, require_migrated, session_factory


def _roster_identity(db_url: str, username: str, groups) -> Identity:
    engine = make_engine(db_url)
    try:
        require_migrated(engine)
        return identity_for_user(session_factory(engine), username, groups)
    except LookupError as exc:
        raise click.BadParameter(str(exc).strip("'\""), param_hint="--user") from None
    except NotMigrated as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()


def parse_instant(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r} (e.g. 2026-11-26T09:15 or 2026-11-26T09:15Z)")


@click.command()
@click.option("--policy", "policy_path", type=click.Path(path_type=Path), default=DEFAULT_POLICY, show_default=True)
@click.option("--group", help="The group to decide for (pupil, staff, guest…).")
@click.option("--year-group", type=int, help="Year group, for rules that name year groups.")
@click.option("--user", "username", help="Decide for a person in the roster, with their group, year group and class.")
@db_option
@click.option("--ip", "client_ip", help="Decide for a client address, resolving its network as the proxy does.")
@click.option("--at", "at", help="ISO 8601 instant; with an offset or Z it is converted to the school's zone, "
              "a naive time is school-local. Default: now.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.argument("url")
def check(policy_path: Path, group: str | None, year_group: int | None, username: str | None, db_url: str,
          client_ip: str | None, at: str | None, as_json: bool, url: str) -> None:
    """Show the decision the gateway takes for URL, and why."""
    compiled = compile_or_exit(policy_path)
    if group is not None and group not in compiled.policy.groups:
        raise click.BadParameter(f"unknown group {group!r} (groups: {', '.join(compiled.policy.groups)})",
                                 param_hint="--group")
    if username:
        identity = _roster_identity(db_url, username, compiled.policy.groups)
    elif client_ip:
        identity = compiled.networks.identify(client_ip)
    elif group:
        identity = Identity(group=group, source=IdentitySource.GIVEN, year_group=year_group)
    else:
        raise click.UsageError("say who to decide for: --group GROUP, --user USERNAME or --ip ADDRESS")
    instant = compiled.calendar.local(parse_instant(at))
    try:
        decision = decide_target(compiled, identity, url, instant)
    except InvalidTarget as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from None
    result = decision.as_dict() | {
        "group": identity.group,
        "user": identity.username,
        "year_group": identity.year_group,
        "age": age_of(identity, instant.date()),
        "at": instant.isoformat(),
        "url": url,
    }
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{decision.action.value.upper()}  {url}")
    if identity.username:
        click.echo(f"  user:    {identity.display_name or identity.username} ({identity.username}), "
                   f"year {identity.year_group if identity.year_group is not None else '-'}, "
                   f"age {result['age'] if result['age'] is not None else 'unknown'}")
    click.echo(f"  group:   {identity.group}" + (f" (network {identity.network})" if identity.network else ""))
    click.echo(f"  when:    {instant:%A %d %B %Y %H:%M %Z} — {decision.period.value}")
    click.echo(f"  source:  {decision.source.value}")
    if decision.rule:
        click.echo(f"  rule:    {decision.rule}")
    if decision.list:
        click.echo(f"  list:    {decision.list} (matched {decision.matched})")
    click.echo(f"  reason:  {decision.reason}")
