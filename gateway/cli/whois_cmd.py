"""`gateway whois IP`: who the gateway believes is behind an address, and why."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.cli.identity_common import load_policy, open_store, policy_option
from gateway.cli.options import db_option
from gateway.identity.leases import LeaseFollower
from gateway.identity.directory import load_directory
from gateway.identity.resolver import Resolver
from gateway.identity.sessions import live_bindings


@click.command()
@db_option
@policy_option
@click.option("--leases", "lease_path", type=click.Path(path_type=Path), envvar="GATEWAY_LEASES",
              help="The DHCP lease file the proxy follows (dnsmasq or ISC dhcpd; env GATEWAY_LEASES).")
@click.option("--user", "proxy_user", help="Also consider proxy credentials for this username.")
@click.argument("ip")
def whois(db_url: str, policy_path: Path, lease_path: Path | None, proxy_user: str | None, ip: str) -> None:
    """Show who the gateway believes is behind IP: each identity source the network names, in order,
    what it said, and the identity a request from IP gets now."""
    policy = load_policy(policy_path)
    resolver = Resolver.for_policy(policy)
    now = datetime.now(UTC)
    with open_store(db_url) as store:
        if lease_path is not None:
            follower = LeaseFollower(lease_path)
            follower.poll()
            resolver.leases = follower.lookup
        # Read-only: whois reports sessions that no longer hold, but ending them is the proxy's job.
        with store() as s:
            resolver.directory = load_directory(s)
            resolver.bindings = live_bindings(s)
    identity, steps = resolver.explain(ip, now, proxy_user)
    network = resolver.subnets.network_for(ip)
    click.echo(f"{ip}: {identity.describe()}")
    click.echo(f"  network: {network.name if network else '(none: the policy default group)'}"
               + (" — sign-in required" if network is not None and network.sign_in_required else ""))
    if network is not None:
        click.echo(f"  order:   {', '.join(s.value for s in network.identity)}")
    lease = resolver.leases(ip, now)
    if lease is not None:
        click.echo(f"  lease:   {lease.mac}" + (f" ({lease.hostname})" if lease.hostname else "")
                   + (f", until {lease.expires:%Y-%m-%d %H:%M} UTC" if lease.expires else ""))
    for step in steps:
        click.echo(f"  {'→' if step.decided else '·'} {step.source.value:<10} {step.detail}")
    fields = [("source", identity.source.value), ("group", identity.group), ("username", identity.username),
              ("year group", identity.year_group), ("class", identity.school_class), ("device", identity.device)]
    click.echo("  identity: " + ", ".join(f"{k} {v}" for k, v in fields if v is not None))
