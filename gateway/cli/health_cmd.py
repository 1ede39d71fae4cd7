"""`gateway health`: a check for monitoring (Nagios, Icinga, or anything that reads exit codes): 0 OK, 1 WARNING,
2 CRITICAL; one summary line, then one line per check; `--json` for machines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gateway.health.checks import Check, Limits, Status
from gateway.store.engine import DEFAULT_DB_URL


@click.command("health")
@click.option("--proxy", "proxies", multiple=True, default=("127.0.0.1:8080",), show_default=True,
              help="A proxy port to check (HOST:PORT, repeatable: one per worker port).")
@click.option("--console", "console_url", default="http://127.0.0.1:8081", show_default=True,
              help="The console's address, as this machine reaches it; empty: not checked.")
@click.option("--pac/--no-pac", default=True, show_default=True,
              help="Check the console's /proxy.pac (the PAC file gateway run writes) names every --proxy port and "
                   "never DIRECT; --no-pac where no device is set up with it.")  # fmt: skip
@click.option("--db", "db_url", envvar="GATEWAY_DB", default=DEFAULT_DB_URL, show_default=True,
              help="Database URL (env GATEWAY_DB); as `gateway run`, var/gateway.db under another --var.")
@click.option("--var", "var_dir", default="var", show_default=True, type=click.Path(path_type=Path),
              help="The gateway's directory: spool, CA, console secret.")
@click.option("--policy", "policy_path", default="policies/default.yaml", show_default=True,
              type=click.Path(path_type=Path), help="The policy the proxies run.")
@click.option("--metrics", "metrics", multiple=True,
              help="A worker's metrics endpoint (HOST:PORT, repeatable); none: not checked.")
@click.option("--spool-critical-minutes", default=60, show_default=True, type=click.IntRange(1),
              help="Rows waiting on disk this long are CRITICAL (any waiting at all is a WARNING).")
@click.option("--ca-warn-days", default=30, show_default=True, type=click.IntRange(0))
@click.option("--ca-critical-days", default=7, show_default=True, type=click.IntRange(0))
@click.option("--disk-warn-percent", default=10.0, show_default=True, type=click.FloatRange(0, 100),
              help="Free space on var/'s disk below which it is a WARNING (CRITICAL below half of it).")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def health(proxies: tuple[str, ...], console_url: str, pac: bool, db_url: str, var_dir: Path, policy_path: Path,
           metrics: tuple[str, ...], spool_critical_minutes: int, ca_warn_days: int, ca_critical_days: int,
           disk_warn_percent: float, as_json: bool) -> None:  # fmt: skip
    """Check a running gateway: proxies answer and decide, console and its PAC file, database, backlogs, policy, CA,
    disk."""
    from gateway.deploy.pac import PAC_NAME
    from gateway.health import checks

    if db_url == DEFAULT_DB_URL and var_dir != Path("var"):
        db_url = f"sqlite:///{var_dir / 'gateway.db'}"
    limits = Limits(spool_critical_age=spool_critical_minutes * 60.0, ca_warn_days=ca_warn_days,
                    ca_critical_days=ca_critical_days, disk_warn_percent=disk_warn_percent,
                    disk_critical_percent=disk_warn_percent / 2)  # fmt: skip
    policy, group = checks.check_policy(policy_path)
    results: list[Check] = [
        *(checks.check_proxy(p, var_dir / "console-secret", group) for p in proxies),
        *([checks.check_console(console_url)] if console_url else []),
        *([checks.check_pac(console_url, [checks.port_of(p) for p in proxies], var_dir / PAC_NAME)]
          if console_url and pac else []),
        checks.check_database(db_url),
    ]
    waiting = checks.spooled(var_dir / "spool")
    results += [
        checks.check_backlog("access-log spool", waiting["access"], "batches of access-log rows", limits),
        checks.check_backlog("refused rows", waiting["rejected"], "access-log rows the database refused", limits),
        checks.check_backlog("audit outbox", waiting["audit"], "audit rows", limits),
        policy,
        checks.check_ca(var_dir / "ca" / "mitmproxy-ca-cert.pem", limits),
        checks.check_disk(var_dir, limits),
        *(checks.check_metrics(m) for m in metrics),
    ]
    worst = max(c.status for c in results)
    if as_json:
        click.echo(json.dumps({"status": worst.name, "checks": [c.as_dict() for c in results]}, indent=2))
    else:
        click.echo(summary(worst, results))
        for check in results:
            click.echo(f"{check.status.name} {check.name}: {check.summary}")
    sys.exit(int(worst))


def summary(worst: Status, results: list[Check]) -> str:
    """The one line a monitoring screen shows: the worst status, and what is wrong (or how many checks passed)."""
    if worst is Status.OK:
        return f"GATEWAY OK - {len(results)} checks passed"
    bad = [f"{c.name}: {c.summary}" for c in results if c.status is worst]
    return f"GATEWAY {worst.name} - " + "; ".join(bad)
