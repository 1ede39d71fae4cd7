"""`gateway impact`: what a grant, or a changed policy file, would have changed over the last days of the log."""

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
from gateway.policy.exceptions import EMPTY
from gateway.store.impact_rows import DEFAULT_DAYS, preview_from_log



@click.command("impact")
@db_option
@policy_option
@grant_scope_options
@click.option("--action", type=click.Choice(["allow", "flag"]), default="allow", show_default=True)
@click.option("--proposed-policy", type=click.Path(path_type=Path, dir_okay=False),
              help="A changed policy file: what its rules and lists would change, against --policy.")  # fmt: skip
@click.option("--days", type=click.IntRange(1, 90), default=DEFAULT_DAYS, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def impact(db_url: str, policy_path: Path, lists: tuple[str, ...], domains: tuple[str, ...], groups: tuple[str, ...],
           users: tuple[str, ...], classes: tuple[str, ...], year_groups: tuple[int, ...], periods: tuple[str, ...],
           action: str, proposed_policy: Path | None, days: int, as_json: bool) -> None:  # fmt: skip
    """Replay the last DAYS of the access log with a grant (--list/--domain and its scope) or a changed policy
    (--proposed-policy) added: the requests, people and hosts it would let through or newly block."""
    compiled = compile_or_exit(policy_path)
    proposed = compile_or_exit(proposed_policy) if proposed_policy else None
    extra = EMPTY
    if lists or domains or proposed is None:
        try:
            extra = proposed_grant(
                compiled, lists=split_items(lists) or [], domains=split_items(domains) or [],
                groups=split_items(groups), users=split_items(users), classes=split_items(classes),
                year_groups=list(year_groups) or None, periods=split_items(periods), action=action,
            )  # fmt: skip
        except RefusedGrant as exc:
            raise click.ClickException(f"refused: {exc}") from None
    with open_store(db_url) as store, store() as session:
        result = preview_from_log(session, compiled, extra, now=datetime.now(UTC), proposed=proposed, days=days)
    if as_json:
        click.echo(json.dumps({"days": days, **result.as_dict()}, indent=2))
        return
    _echo(result, days)


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
