"""`gateway deploy`: what a Linux gateway machine needs around the proxy (nftables rules, systemd units)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gateway.store.retention import DEFAULT_RETENTION_DAYS

GATEWAY_CLI = [sys.executable, "-m", "gateway"]

policy_option = click.option(
    "--policy", "policy_path", type=click.Path(path_type=Path, dir_okay=False), default="policies/default.yaml",
    show_default=True, help="The school's policy: its networks: are the client subnets.",
)  # fmt: skip


@click.group("deploy")
def deploy() -> None:
    """Set up a Linux gateway machine: transparent-mode firewall rules and systemd units."""


@deploy.command("nftables")
@policy_option
@click.option("--proxy-port", default=8080, show_default=True, type=click.IntRange(1, 65535),
              help="The proxy's transparent port (the --transparent-port of `gateway deploy systemd`).")
@click.option("--interface", "interfaces", multiple=True, metavar="IFACE",
              help="A WiFi VLAN interface (repeat for each); only traffic arriving on them is redirected.")
@click.option("--network", "networks", multiple=True, metavar="NAME",
              help="Only this network of the policy (repeat for each; default all but loopback ones).")
@click.option("--fail-closed", "fail_closed", multiple=True, default=["pupil"], show_default=True, metavar="GROUP",
              help="Groups whose web traffic is refused, never routed around, while the proxy is down (repeat for "
                   "each; 'all' for every group). Other groups' traffic bypasses a stopped proxy.")  # fmt: skip
@click.option("--allow-egress", "egress", multiple=True, default=["udp/123"], show_default=True, metavar="PROTO/PORT",
              help="What else fail-closed groups may send through the gateway besides the web (repeat for each); "
                   "everything else from them is dropped (VPNs, DNS over TLS, Tor, SSH, other proxies).")
@click.option("--dns-server", "dns_servers", multiple=True, metavar="ADDRESS",
              help="A DNS resolver fail-closed groups may ask (repeat for each; not needed when the gateway itself "
                   "answers DNS).")
@click.option("--open-egress", is_flag=True, help="Do not restrict fail-closed groups' other traffic.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Proxy workers on --proxy-port and the ports after it (`gateway run --workers N`): each device "
                   "goes to one, by a hash of its address.")  # fmt: skip
def nftables(policy_path: Path, proxy_port: int, interfaces: tuple[str, ...], networks: tuple[str, ...],
             fail_closed: tuple[str, ...], egress: tuple[str, ...], dns_servers: tuple[str, ...],
             open_egress: bool, workers: int) -> None:  # fmt: skip
    """Print the nftables ruleset for transparent mode (load it with `nft -f FILE`)."""
    from gateway.cli.policy_cmd import load_or_exit
    from gateway.deploy.nftables import DeployError, ruleset, transparent

    policy = load_or_exit(policy_path).policy
    try:
        setup = transparent(policy, proxy_port=proxy_port, fail_closed=fail_closed, interfaces=interfaces,
                            networks=networks, egress=None if open_egress else egress,
                            dns_servers=dns_servers, workers=workers)  # fmt: skip
    except DeployError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(ruleset(setup), nl=False)


@deploy.command("systemd")
@policy_option
@click.option("--dir", "out_dir", type=click.Path(path_type=Path, file_okay=False), default="/etc/systemd/system",
              show_default=True, help="Where to write the unit files.")
@click.option("--public-url", required=True,
              help="The console and sign-in portal's address as school devices reach it, e.g. http://10.10.0.1:8081.")
@click.option("--var", "var_dir", type=click.Path(path_type=Path, file_okay=False), default="/var/lib/school-gateway",
              show_default=True, help="The gateway's folder: database, CA, spool, keys (the only one it writes).")
@click.option("--db", "db_url", envvar="GATEWAY_DB", help="Database URL (default sqlite:///VAR/gateway.db).")
@click.option("--user", default="school-gateway", show_default=True,
              help="The system user the services run as (make it: useradd --system school-gateway).")
@click.option("--transparent-port", default=8080, show_default=True, type=click.IntRange(1024, 65535),
              help="The port the nftables rules redirect web traffic to.")
@click.option("--explicit-port", default=3128, show_default=True, type=click.IntRange(1024, 65535),
              help="The port for devices set up with a proxy (PAC/WPAD), and for the console's filter self-test.")
@click.option("--console-host", default="0.0.0.0", show_default=True)
@click.option("--console-port", default=8081, show_default=True, type=click.IntRange(1024, 65535))
@click.option("--nftables", "nft_file", type=click.Path(path_type=Path, dir_okay=False),
              help="The ruleset from `gateway deploy nftables`, loaded as the proxy starts; its fail-open networks "
                   "are taken off the proxy when it stops.")  # fmt: skip
@click.option("--retention-days", default=DEFAULT_RETENTION_DAYS, show_default=True, type=click.IntRange(min=1),
              help="The daily maintenance deletes access-log rows older than this.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Proxy workers, a unit each; worker n on --transparent-port + n and --explicit-port + n (make the "
                   "ruleset with `gateway deploy nftables --workers N`).")  # fmt: skip
def systemd(policy_path: Path, out_dir: Path, public_url: str, var_dir: Path, db_url: str | None, user: str,
            transparent_port: int, explicit_port: int, console_host: str, console_port: int,
            nft_file: Path | None, retention_days: int, workers: int) -> None:  # fmt: skip
    """Write systemd units: prepare, proxy (transparent mode), console, and a daily maintenance timer."""
    from gateway.cli.policy_cmd import load_or_exit
    from gateway.cli.run_cmd import ROOT, console_command, proxy_command
    from gateway.deploy.nftables import flush_fail_open
    from gateway.deploy.systemd import Deployment, unit_files

    load_or_exit(policy_path)  # units for a policy that does not load would only fail at boot
    public_url = public_url.rstrip("/")
    if not public_url.startswith(("http://", "https://")):
        raise click.BadParameter(f"{public_url!r} is not an http:// or https:// address", param_hint="--public-url")
    var = var_dir.resolve()
    policy = str(policy_path.resolve())
    db_url = db_url or f"sqlite:///{var / 'gateway.db'}"
    ports = {*range(transparent_port, transparent_port + workers), *range(explicit_port, explicit_port + workers)}
    if len(ports) < 2 * workers or console_port in ports or max(ports) > 65535:
        raise click.UsageError(f"{workers} workers' transparent ports from {transparent_port} and explicit ports from "
                               f"{explicit_port} overlap each other, the console's port or the last port")

    def proxy(n: int) -> list[str]:
        listen = ["--mode", f"transparent@0.0.0.0:{transparent_port + n}",
                  "--mode", f"regular@0.0.0.0:{explicit_port + n}"]  # fmt: skip
        # The daily purge is the maintenance timer's, once per machine, not every proxy process's.
        command = [*proxy_command(var, db_url, policy, public_url, listen), "--set", "gateway_retention_days=0"]
        return [*command, "--set", f"gateway_worker={n}"] if workers > 1 else command

    console = console_command(var, db_url, policy, public_url, console_host, console_port,
                              f"http://127.0.0.1:{explicit_port}")  # fmt: skip
    deployment = Deployment(
        user=user, var=var, checkout=ROOT,
        prepare=[*GATEWAY_CLI, "deploy", "prepare", "--var", str(var), "--db", db_url],
        proxy=proxy(0), console=console, workers=[proxy(n) for n in range(workers)] if workers > 1 else [],
        maintenance=[*GATEWAY_CLI, "purge", "--db", db_url, "--older-than", str(retention_days)],
        nftables=nft_file.resolve() if nft_file else None, nft_stop=flush_fail_open() if nft_file else (),
    )  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in unit_files(deployment).items():
        (out_dir / name).write_text(text)
        click.echo(out_dir / name)
    proxies = " ".join(f"school-gateway-proxy-{n}" for n in range(workers)) if workers > 1 else "school-gateway-proxy"
    click.echo(f"then: systemctl daemon-reload && systemctl enable --now {proxies} "
               "school-gateway-console school-gateway-maintenance.timer", err=True)  # fmt: skip


@deploy.command("prepare")
@click.option("--var", "var_dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--db", "db_url", envvar="GATEWAY_DB", required=True)
@click.option("--site", help="The policy's school.site: what rows from before records carried a site become.")
def prepare_cmd(var_dir: Path, db_url: str, site: str | None) -> None:
    """Make the gateway's folders, migrate the database and make the keys proxy and console share (as `gateway run`
    does before it starts them; the prepare unit runs this)."""
    from gateway.cli.run_cmd import prepare

    prepare(var_dir, db_url, site)
