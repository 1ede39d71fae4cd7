"""The `gateway` command: one click group; each command group lives in its own module."""

from __future__ import annotations

import click

from gateway.cli.check_cmd import check
from gateway.cli.console_cmd import console
from gateway.cli.db_cmd import db
from gateway.cli.deploy_cmd import deploy
from gateway.cli.lists_cmd import lists
from gateway.cli.policy_cmd import policy
from gateway.cli.proxy_cmd import proxy
from gateway.cli.reports_cmd import reports
from gateway.cli.retention_cmd import export_person_cmd, purge_cmd
from gateway.cli.devices_cmd import devices
from gateway.cli.consent_cmd import consent
from gateway.cli.grants_cmd import grants
from gateway.cli.health_cmd import health
from gateway.cli.impact_cmd import impact
from gateway.cli.roster_cmd import roster
from gateway.cli.run_cmd import run
from gateway.cli.selftest_cmd import selftest
from gateway.cli.users_cmd import users
from gateway.cli.whois_cmd import whois


@click.group()
@click.version_option(package_name="school-web-gateway")
def cli() -> None:
    """School web gateway: policy, lists, logs and console."""


cli.add_command(check)
cli.add_command(db)
cli.add_command(lists)
cli.add_command(policy)
cli.add_command(roster)
cli.add_command(devices)
cli.add_command(consent)
cli.add_command(whois)
cli.add_command(users)
cli.add_command(console)
cli.add_command(purge_cmd)
cli.add_command(export_person_cmd)
cli.add_command(run)
cli.add_command(proxy)
cli.add_command(grants)
cli.add_command(impact)
cli.add_command(selftest)
cli.add_command(reports)
cli.add_command(deploy)
cli.add_command(health)
