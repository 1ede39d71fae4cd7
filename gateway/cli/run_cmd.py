"""`gateway run`: the one command a new user runs. Proxy and console side by side, stopped together on Ctrl-C."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import click
from sqlalchemy.exc import InterfaceError, OperationalError

from gateway.store.engine import DEFAULT_DB_URL, display_url

ROOT = Path(__file__).resolve().parents[2]
DEMO_ROSTER = ROOT / "policies" / "demo" / "roster.csv"


def _reachable(host: str) -> str:
    """A name devices can use for a console listening on `host` (a wildcard address is not one)."""
    if host in ("0.0.0.0", "::", ""):
        return socket.getfqdn()
    return f"[{host}]" if ":" in host else host


def _local(host: str) -> str:
    """How the console, on this machine, reaches a proxy listening on `host`."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(host) or _reachable(host)


def prepare(var: Path, db_url: str, site: str | None = None) -> None:
    """What proxy and console need before either starts: the folders, the migrated database, and the two keys they
    share, made here once rather than raced for by both (`gateway deploy prepare` runs this for systemd)."""
    from gateway.identity.portal_link import load_key
    from gateway.store.migrate import upgrade
    from gateway.web.app import ConsoleConfig, _secret_key

    for sub in ("ca", "spool"):
        (var / sub).mkdir(parents=True, exist_ok=True)
    upgrade(db_url, site=site)  # rows from before records carried a site become this school's
    load_key(var / "portal-link-key")
    # The proxy honours the self-test tokens the console signs with its secret.
    _secret_key(ConsoleConfig(secret_key_file=str(var / "console-secret")))


def proxy_command(var: Path, db_url: str, policy: str, public_url: str, listen: list[str]) -> list[str]:
    """`gateway proxy` (the gateway's own lean mitmproxy Master) with the gateway's options; `listen` says where
    (`--listen-port`, `--mode`...)."""
    return [
        sys.executable, "-c", "from gateway.cli.main import cli; cli()", "proxy", *listen,
        "--set", f"gateway_policy={policy}", "--set", f"confdir={var / 'ca'}",
        "--set", f"gateway_db={db_url}", "--set", f"gateway_spool={var / 'spool'}",
        "--set", f"gateway_portal_url={public_url}", "--set", f"gateway_portal_link_key={var / 'portal-link-key'}",
        "--set", f"gateway_selftest_secret_file={var / 'console-secret'}",
    ]  # fmt: skip


def console_command(var: Path, db_url: str, policy: str, public_url: str, host: str, port: int,
                    proxy_url: str) -> list[str]:  # fmt: skip
    """`gateway console` serving the console and portal, with the keys the proxy shares."""
    return [
        sys.executable, "-c", "from gateway.cli.main import cli; cli()", "console", "--db", db_url,
        "--host", host, "--port", str(port), "--secret-file", str(var / "console-secret"),
        "--policy", policy, "--public-url", public_url, "--portal-link-key-file", str(var / "portal-link-key"),
        "--proxy-url", proxy_url,
    ]  # fmt: skip


@click.command("run")
@click.option("--db", "db_url", envvar="GATEWAY_DB", default=DEFAULT_DB_URL, show_default=True)
@click.option("--policy", default="policies/default.yaml", show_default=True)
@click.option("--listen-host", default="0.0.0.0", show_default=True, help="Proxy address.")
@click.option("--listen-port", default=8080, show_default=True, type=int, help="Proxy port.")
@click.option("--console-host", default="127.0.0.1", show_default=True)
@click.option("--console-port", default=8081, show_default=True, type=int)
@click.option("--public-url", help="The console and sign-in portal's address as school devices reach it; the proxy "
              "sends devices there to sign in and lets them reach it (default http://CONSOLE-HOST:CONSOLE-PORT).")
@click.option("--var", "var_dir", default="var", show_default=True, help="Directory for the database, CA, spool.")
@click.option("--demo-data", is_flag=True,
              help=f"Import the demo roster ({DEMO_ROSTER.relative_to(ROOT)}) when the roster is empty.")
@click.option("--workers", type=click.IntRange(1, 256), default=os.cpu_count() or 1, show_default="the cores",
              help="Proxy processes, on --listen-port and the free ports after it (not the console's); devices are "
                   "spread over them by the PAC file the console serves at /proxy.pac.")  # fmt: skip
@click.option("--metrics-port", type=click.IntRange(1, 65535 - 256), metavar="BASE",
              help="Serve each worker's Prometheus metrics on 127.0.0.1, worker N on BASE+N (default: none).")
def run(db_url: str, policy: str, listen_host: str, listen_port: int, console_host: str, console_port: int,
        public_url: str | None, var_dir: str, demo_data: bool, workers: int,
        metrics_port: int | None) -> None:  # fmt: skip
    """Start the gateway: migrate the database, make a first console account if none, run proxy and console."""
    from gateway.cli.policy_cmd import load_or_exit
    from gateway.cli.roster_cmd import import_demo_roster
    from gateway.cli.users_cmd import add_account, has_accounts

    loaded = load_or_exit(Path(policy))  # a policy that does not load stops here, before anything starts
    public_url = (public_url or f"http://{_reachable(console_host)}:{console_port}").rstrip("/")
    if not public_url.startswith(("http://", "https://")):
        raise click.BadParameter(f"{public_url!r} is not an http:// or https:// address", param_hint="--public-url")

    var = Path(var_dir)
    if db_url == DEFAULT_DB_URL and var_dir != "var":
        db_url = f"sqlite:///{var / 'gateway.db'}"
    try:
        prepare(var, db_url, loaded.policy.school.site)
    except (OperationalError, InterfaceError) as exc:
        # Refused, unknown host, wrong password: said in one line, before anything starts, not as a traceback.
        reason = str(getattr(exc, "orig", None) or exc).strip().partition("\n")[0]
        raise click.ClickException(f"database {display_url(db_url)} cannot be reached: {reason}") from None
    if not has_accounts(db_url):
        password = secrets.token_urlsafe(12)
        add_account(db_url, "officer", "E-safety officer (demo)", "officer", password)
        click.secho(f"First console account: officer / {password}  (change it: it is shown only once)", bold=True)
    if demo_data:
        import_demo_roster(db_url, Path(policy), DEMO_ROSTER)
    from gateway.cli.workers import ProxyWorkers, worker_ports
    from gateway.deploy.pac import PAC_NAME, pac_file

    ports = worker_ports(listen_host, listen_port, workers, avoid=console_port)
    # Proxy and console share this machine: with the proxy on every address, devices reach it where they reach
    # the console.
    wildcard = listen_host in ("0.0.0.0", "::", "")
    pac_host = _reachable(urlsplit(public_url).hostname or "") if wildcard else _reachable(listen_host)
    (var / PAC_NAME).write_text(pac_file(pac_host, ports), encoding="utf-8")
    named = workers > 1
    proxy_cmds = [
        (port, [*proxy_command(var, db_url, policy, public_url, ["--listen-host", listen_host, "--listen-port",
                                                                 str(port)]),
                *(["--set", f"gateway_worker={n}"] if named else []),
                *(["--set", f"gateway_metrics_listen=127.0.0.1:{metrics_port + n}"] if metrics_port else [])])
        for n, port in enumerate(ports)
    ]  # fmt: skip
    console_cmd = console_command(var, db_url, policy, public_url, console_host, console_port,
                                  f"http://{_local(listen_host)}:{ports[0]}")  # fmt: skip
    # Children import the gateway from this checkout whether or not it is installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proxies = ProxyWorkers(proxy_cmds, env, host=listen_host)
    proxies.start()
    console = subprocess.Popen(console_cmd, env=env)
    if named:
        click.echo(f"proxy:    {listen_host} ports {', '.join(map(str, ports))}  ({workers} workers: set "
                   f"{public_url}/proxy.pac as the automatic proxy configuration on school devices)")
        click.echo(f"          (transparent mode: gateway deploy nftables --workers {workers} hashes devices over "
                   "consecutive ports)")
    else:
        click.echo(f"proxy:    {listen_host}:{listen_port}  (set this as the HTTP/HTTPS proxy on school devices)")
    click.echo(f"console:  {public_url}/  (and the WiFi sign-in portal, {public_url}/portal/sign-in)")
    click.echo(f"CA:       {var / 'ca' / 'mitmproxy-ca-cert.pem'}  (install on devices; also http://mitm.it via the proxy)")
    click.echo(f"database: {display_url(db_url)}")
    click.echo("Ctrl-C stops both.")

    stopping = False
    gave_up: click.ClickException | None = None

    def stop(*_args: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and console.poll() is None:
            proxies.tend()
            time.sleep(0.3)
    except KeyboardInterrupt:
        pass
    except click.ClickException as exc:
        gave_up = exc
    if console.poll() is None:
        console.send_signal(signal.SIGINT)
    proxies.stop()
    try:
        console.wait(timeout=30)
    except subprocess.TimeoutExpired:
        console.kill()
    if gave_up is not None:
        raise gave_up
    if console.returncode not in (0, -signal.SIGINT, 130) and not stopping:
        raise click.ClickException(f"stopped because the console exited ({console.returncode})")
