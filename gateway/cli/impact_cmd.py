"""`gateway impact`: what a grant, a rule or list change, or a changed policy file would have changed over the last
days of the log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.cli.identity_common import open_store, policy_option
from gateway.cli.grant_scope import grant_scope_options, split_items
from gateway.cli.options import db_option
from gateway.cli.policy_cmd import compile_or_exit
from gateway.decisions.impact import Change, Impact, RefusedGrant, proposed_grant
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.exceptions import EMPTY
from gateway.policy.proposed_change import (AddRule, AddToList, DropRule, PolicyChange, ProposedPolicy, RefusedChange,
                                            RemoveFromList, SetRuleAction, action_of, assignment, domains_of,
                                            new_rule, propose)  # fmt: skip
from gateway.store.change_preview import preview_change
from gateway.store.impact_rows import DEFAULT_DAYS, preview_from_log


@click.command("impact")
@db_option
@policy_option
@grant_scope_options
@click.option("--action", type=click.Choice(["allow", "flag"]), default="allow", show_default=True)
@click.option("--proposed-policy", type=click.Path(path_type=Path, dir_okay=False),
              help="A changed policy file: what its rules and lists would change, against --policy.")  # fmt: skip
@click.option("--add-to-list", "add_to", multiple=True, metavar="LIST=DOMAINS", help="Add sites to a list.")
@click.option("--remove-from-list", "remove_from", multiple=True, metavar="LIST=DOMAINS",
              help="Take sites off a list.")  # fmt: skip
@click.option("--add-rule", metavar="ID=ACTION",
              help="Add a rule: its sites and scope from --list, --domain, --group, --year and --period.")
@click.option("--first", is_flag=True, help="Place the added rule first (it is placed last otherwise).")
@click.option("--reason", default="", help="The added rule's reason (the block page shows it).")
@click.option("--rule-action", "rule_actions", multiple=True, metavar="RULE=ACTION", help="Change a rule's action.")
@click.option("--drop-rule", "drop_rules", multiple=True, metavar="RULE", help="Remove a rule.")
@click.option("--days", type=click.IntRange(1, 90), default=DEFAULT_DAYS, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def impact(db_url: str, policy_path: Path, lists: tuple[str, ...], domains: tuple[str, ...], groups: tuple[str, ...],
           users: tuple[str, ...], classes: tuple[str, ...], year_groups: tuple[int, ...], periods: tuple[str, ...],
           action: str, proposed_policy: Path | None, add_to: tuple[str, ...], remove_from: tuple[str, ...],
           add_rule: str | None, first: bool, reason: str, rule_actions: tuple[str, ...], drop_rules: tuple[str, ...],
           days: int, as_json: bool) -> None:  # fmt: skip
    """Replay the last DAYS of the access log with a grant (--list/--domain and its scope), a rule or list change
    (--add-to-list, --remove-from-list, --add-rule, --rule-action, --drop-rule) or a changed policy
    (--proposed-policy) added: the requests, people and hosts it would let through or newly block."""
    compiled = compile_or_exit(policy_path)
    proposed = compile_or_exit(proposed_policy) if proposed_policy else None
    changed: ProposedPolicy | None = None
    try:
        changes = _changes(add_to, remove_from, rule_actions, drop_rules)
        if add_rule:
            if users or classes:
                raise RefusedChange("--user and --class scope a grant; a rule is scoped by group, year and period")
            changes.append(_added_rule(add_rule, first, reason, lists, domains, groups, year_groups, periods))
        if changes:
            if proposed is not None:
                raise RefusedChange("give either --proposed-policy or changes to --policy, not both")
            changed = propose(compiled, changes)
    except RefusedChange as exc:
        raise click.ClickException(f"refused: {exc}") from None
    extra = EMPTY
    if changed is None and (lists or domains or proposed is None):
        try:
            extra = proposed_grant(
                compiled, lists=split_items(lists) or [], domains=split_items(domains) or [],
                groups=split_items(groups), users=split_items(users), classes=split_items(classes),
                year_groups=list(year_groups) or None, periods=split_items(periods), action=action,
            )  # fmt: skip
        except RefusedGrant as exc:
            raise click.ClickException(f"refused: {exc}") from None
    with open_store(db_url) as store, store() as session:
        if changed is not None:
            result = preview_change(session, compiled, changed, now=datetime.now(UTC), days=days)
        else:
            result = preview_from_log(session, compiled, extra, now=datetime.now(UTC), proposed=proposed, days=days)
    if as_json:
        edits = [{"where": e.where, "text": e.text} for e in changed.edits] if changed else []
        extra_fields = {"edits": edits} if changed else {}
        click.echo(json.dumps({"days": days, **result.as_dict(), **extra_fields}, indent=2))
        return
    _echo(result, days)
    if changed is not None:
        _echo_edits(changed, compiled)


def _changes(add_to: tuple[str, ...], remove_from: tuple[str, ...], rule_actions: tuple[str, ...],
             drop_rules: tuple[str, ...]) -> list[PolicyChange]:  # fmt: skip
    changes: list[PolicyChange] = []
    for kind, values in ((AddToList, add_to), (RemoveFromList, remove_from)):
        for value in values:
            name, text = assignment(value, "LIST=DOMAINS")
            changes.append(kind(name, domains_of(text)))
    for value in rule_actions:
        name, text = assignment(value, "RULE=ACTION")
        changes.append(SetRuleAction(name, action_of(text)))
    changes += [DropRule(name) for name in drop_rules]
    return changes


def _added_rule(spec: str, first: bool, reason: str, lists: tuple[str, ...], domains: tuple[str, ...],
                groups: tuple[str, ...], year_groups: tuple[int, ...],
                periods: tuple[str, ...]) -> AddRule:  # fmt: skip
    ident, action = assignment(spec, "ID=ACTION")
    if not reason.strip():
        raise RefusedChange("--reason: a rule needs one (the block page shows it)")
    rule = new_rule(id=ident, action=action_of(action), reason=reason.strip(), lists=split_items(lists) or [],
                    domains=list(domains_of(domains)) if split_items(domains) else [], groups=split_items(groups),
                    year_groups=list(year_groups) or None, periods=split_items(periods))  # fmt: skip
    return AddRule(rule, first=first)


def _echo(result: Impact, days: int) -> None:
    click.echo(f"Replayed {result.requests} requests from the last {days} days.")
    _echo_change("Would let through", result.let_through, flagged=True)
    if result.newly_blocked.requests:
        _echo_change("Would newly block", result.newly_blocked, flagged=False)


def _echo_change(title: str, change: Change, *, flagged: bool) -> None:
    line = f"{title}: {change.requests} requests by {change.people} people to {change.host_count} hosts"
    click.echo(line + (f" ({change.flagged} of them flagged)" if flagged else ""))
    for host, requests in change.hosts:
        click.echo(f"  {requests:>8}  {host}")
    if change.host_count > len(change.hosts):
        click.echo(f"  and {change.host_count - len(change.hosts)} more hosts")


def _echo_edits(changed: ProposedPolicy, compiled: CompiledPolicy) -> None:
    click.echo("To make this change:")
    for edit in changed.edits:
        click.echo(f"  {edit.where}")
        click.echo("".join(f"    {line}\n" for line in edit.text.splitlines()), nl=False)
    click.echo(f"then run: gateway policy reload {compiled.loaded.path}")
