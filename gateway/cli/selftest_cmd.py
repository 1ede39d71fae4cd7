"""`gateway selftest`: real requests through the running proxy, per group and DfE/UKSIC category, reported against
what the standards ask; exit status 1 when a category fails."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.cli.policy_cmd import DEFAULT_POLICY, load_or_exit
from gateway.policy.loader import PolicyError


@click.command("selftest")
@click.option("--group", "groups", multiple=True, help="Test only this group (repeatable); default every group.")
@click.option("--year-group", type=click.IntRange(0, 14),
              help="Decide every request as this year group (rules and content thresholds may differ by year).")
@click.option("--proxy", "proxy_url", default="http://127.0.0.1:8080", show_default=True,
              help="The running gateway's proxy address.")  # fmt: skip
@click.option("--secret-file", default="var/console-secret", show_default=True, type=click.Path(path_type=Path),
              help="The console's secret file, which the proxy was given (`gateway run` gives it).")  # fmt: skip
@click.option("--policy", "policy_path", default=DEFAULT_POLICY, show_default=True, type=click.Path(path_type=Path),
              help="The policy the proxy runs: its groups and lists are what is tested.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def selftest(groups: tuple[str, ...], year_group: int | None, proxy_url: str, secret_file: Path, policy_path: Path,
             as_json: bool) -> None:  # fmt: skip
    """Check the running filter the way the DfE asks: test URLs per user group and category.

    Known-bad addresses (sampled from the policy's lists for each category, and the illegal-content slot's test
    entry) must be blocked for pupils (or reported, for groups the standards let see more); known-good educational
    sites must stay open. With content analysis on, a page of each analysed category's phrases, on an address no
    list names, must be blocked by its words alone. The proxy answers every self-test request it allows from a
    local test server this command starts, never from the internet.
    """
    from gateway.selftest.plan import SelftestDataError, build_plan
    from gateway.selftest.runner import run_selftest
    from gateway.selftest.text_report import render_text
    from gateway.selftest.token import read_secret
    from gateway.store.audit import cli_actor

    loaded = load_or_exit(policy_path)
    try:
        plan = build_plan(loaded, groups or None, year_group)
    except SelftestDataError as exc:
        raise click.BadParameter(str(exc), param_hint="--group" if "group" in str(exc) else None) from None
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        secret = read_secret(secret_file)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {secret_file}: {exc.strerror}", param_hint="--secret-file") from None
    report = run_selftest(plan, proxy_url, secret, ran_by=cli_actor(), now=datetime.now(UTC).astimezone())
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else render_text(report), nl=not as_json)
    if not report.passed:
        raise SystemExit(1)
