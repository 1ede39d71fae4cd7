"""`gateway check`: the officer's "why was this blocked?" tool, deciding exactly as the proxy does."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.decisions.engine import InvalidTarget, decide_target, split_target
from gateway.identity.types import Identity, IdentitySource
from gateway.cli.policy_cmd import DEFAULT_POLICY, compile_or_exit
from gateway.identity.directory import identity_for_user
from gateway.identity.ages import age_of
from gateway.services.age_rules import AgeRule
from gateway.cli.options import db_option
from gateway.policy.bans import BanSet, entry
from gateway.policy.exceptions import EMPTY, ExceptionSet
from gateway.store.bans import BanInForce, bans_in_force
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


def _ban_of(db_url: str, username: str) -> BanInForce | None:
    """The person's ban in force now (bans run on the real time, whatever `--at` says)."""
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            return next((ban for ban in bans_in_force(session, datetime.now(UTC)) if ban.username == username), None)
    finally:
        engine.dispose()


def _ban_line(ban: BanInForce) -> str:
    until = f"until {ban.ends_at:%d %B %Y %H:%M %Z}" if ban.ends_at else "until the headteacher lifts it"
    supervised = (f"; supervised session running until {ban.supervised_until:%H:%M %Z}, so the normal rules apply"
                  if ban.supervised_until else "")  # fmt: skip
    return f"supervised-only access (ban {ban.ban_id}), {until}{supervised}"


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
    ban = None
    if username:
        identity = _roster_identity(db_url, username, compiled.policy.groups)
        ban = _ban_of(db_url, identity.username or username)
    elif client_ip:
        identity = compiled.networks.identify(client_ip)
    elif group:
        identity = Identity(group=group, source=IdentitySource.GIVEN, year_group=year_group)
    else:
        raise click.UsageError("say who to decide for: --group GROUP, --user USERNAME or --ip ADDRESS")
    instant = compiled.calendar.local(parse_instant(at))
    try:
        bans = EMPTY if ban is None else ExceptionSet(
            (), BanSet({ban.username: entry(ban.ban_id, ban.ends_at, ban.supervised_until)}))
        decision = decide_target(compiled, identity, url, instant, bans)
        host, path = split_target(url)
    except InvalidTarget as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from None
    age_rule = compiled.age.rule(identity, host, path, instant.date())
    if age_rule is not None and age_rule.blocked and not decision.blocked:
        decision = age_rule.decision(decision.period, host)
    result = decision.as_dict() | {
        "group": identity.group,
        "user": identity.username,
        "year_group": identity.year_group,
        "age": age_of(identity, instant.date()),
        "at": instant.isoformat(),
        "url": url,
        "age_rule": _age_rule_dict(age_rule, compiled.age.no_date_of_birth.value),
        "ban": None if ban is None else {"id": ban.ban_id, "ends_at": ban.ends_at and ban.ends_at.isoformat(),
                                         "supervised_until": ban.supervised_until and ban.supervised_until.isoformat()},
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
    if ban is not None:
        click.echo(f"  ban:     {_ban_line(ban)}")
    if age_rule is not None:
        click.echo(f"  age:     {_age_rule_line(age_rule, compiled.age.no_date_of_birth.value)}")


def _age_rule_dict(rule: AgeRule | None, no_date_of_birth: str) -> dict | None:
    if rule is None:
        return None
    return {"site": rule.site.name, "minimum_age": rule.site.minimum_age, "whole_site": rule.site.whole_site,
            "checked": rule.checked, "gated_page": rule.gated_page, "age": rule.age, "age_from": rule.age_from,
            "no_date_of_birth": no_date_of_birth if rule.age is None else None,
            "outcome": "block" if rule.blocked else "allow"}  # fmt: skip


def _age_rule_line(rule: AgeRule, no_date_of_birth: str) -> str:
    """The age rule in one line: the site's minimum, the person's age today and where it came from, the outcome."""
    site = f"{rule.site.name} is {rule.site.minimum_age}+ ({'whole site' if rule.site.whole_site else 'sign-up pages'})"
    if not rule.checked:
        return f"{site}; not applied to this group"
    if rule.age is not None:
        age = f"age {rule.age} today (from the {rule.age_from})"
    else:
        age = f"age unknown: no date of birth on the roster, treated as {no_date_of_birth} (age_limits.no_date_of_birth)"
    if not rule.gated_page:
        outcome = "not a sign-up page: allowed"
    else:
        why = "below the minimum age" if rule.age is not None else "age unknown"
        outcome = f"blocked: {why}" if rule.blocked else "allowed"
    return f"{site}; {age}; {outcome}"
