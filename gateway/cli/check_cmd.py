"""`gateway check`: the officer's "why was this blocked?" tool, deciding exactly as the proxy does."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.decisions.engine import InvalidTarget, decide_target
from gateway.identity.types import Identity, IdentitySource
from gateway.cli.policy_cmd import DEFAULT_POLICY, compile_or_exit


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
@click.option("--ip", "client_ip", help="Decide for a client address, resolving its network as the proxy does.")
@click.option("--at", "at", help="ISO 8601 instant; with an offset or Z it is converted to the school's zone, "
              "a naive time is school-local. Default: now.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.argument("url")
def check(policy_path: Path, group: str | None, year_group: int | None, client_ip: str | None, at: str | None,
          as_json: bool, url: str) -> None:
    """Show the decision the gateway takes for URL, and why."""
    compiled = compile_or_exit(policy_path)
    if group is not None and group not in compiled.policy.groups:
        raise click.BadParameter(f"unknown group {group!r} (groups: {', '.join(compiled.policy.groups)})",
                                 param_hint="--group")
    if client_ip:
        identity = compiled.networks.identify(client_ip)
    elif group:
        identity = Identity(group=group, source=IdentitySource.GIVEN, year_group=year_group)
    else:
        raise click.UsageError("say who to decide for: --group GROUP or --ip ADDRESS")
    instant = compiled.calendar.local(parse_instant(at))
    try:
        decision = decide_target(compiled, identity, url, instant)
    except InvalidTarget as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from None
    result = decision.as_dict() | {"group": identity.group, "at": instant.isoformat(), "url": url}
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{decision.action.value.upper()}  {url}")
    click.echo(f"  group:   {identity.group}" + (f" (network {identity.network})" if identity.network else ""))
    click.echo(f"  when:    {instant:%A %d %B %Y %H:%M %Z} — {decision.period.value}")
    click.echo(f"  source:  {decision.source.value}")
    if decision.rule:
        click.echo(f"  rule:    {decision.rule}")
    if decision.list:
        click.echo(f"  list:    {decision.list} (matched {decision.matched})")
    click.echo(f"  reason:  {decision.reason}")
