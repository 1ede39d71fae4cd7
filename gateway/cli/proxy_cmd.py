"""`gateway proxy`: one proxy process, the gateway's own mitmproxy Master (what `gateway run` starts)."""

from __future__ import annotations

import click


@click.command("proxy", context_settings={"show_default": True})
@click.option("--mode", "modes", multiple=True, metavar="SPEC",
              help="mitmproxy proxy mode (regular, transparent, dns, regular@HOST:PORT...), repeatable; "
                   "default regular.")  # fmt: skip
@click.option("--listen-host", help="Address to listen on (default all).")
@click.option("--listen-port", type=click.IntRange(0, 65535), help="Port to listen on (default 8080).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="A mitmproxy or gateway option, as mitmdump's --set (e.g. gateway_policy=policies/default.yaml), "
                   "repeatable.")  # fmt: skip
@click.option("-s", "--script", "scripts", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A mitmproxy script to run in front of the gateway's parts, repeatable.")
def proxy(modes: tuple[str, ...], listen_host: str | None, listen_port: int | None, sets: tuple[str, ...],
          scripts: tuple[str, ...]) -> None:  # fmt: skip
    """Filter web traffic: the gateway's parts in a lean mitmproxy (only the built-in addons a gateway needs).
    SIGINT or SIGTERM stops it cleanly, writing the access log's queue first."""
    from gateway.proxy.master import run, settings
    from gateway.proxy.parts import gateway_addons

    run(settings(modes, listen_host, listen_port, sets, scripts), gateway_addons, scripts=bool(scripts))
