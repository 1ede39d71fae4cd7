"""Runs the RADIUS accounting listener inside the proxy, feeding the identity sources."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from pathlib import Path

from mitmproxy import ctx, exceptions

from gateway.identity.radius import AccountingListener
from gateway.proxy.identity_sources import IdentitySources

log = logging.getLogger(__name__)


class RadiusListenerAddon:
    def __init__(self, sources: IdentitySources) -> None:
        self.sources = sources
        self.listener: AccountingListener | None = None

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("gateway_radius_listen", str, "",
                          "host:port for RADIUS accounting from the WiFi controller (e.g. 0.0.0.0:1813); "
                          "empty: off.")
        loader.add_option("gateway_radius_secret_file", str, "", "File holding the RADIUS shared secret.")
        loader.add_option("gateway_radius_clients", str, "",
                          "Comma-separated addresses or networks allowed to send accounting; empty: any.")

    def configure(self, updated: set[str]) -> None:
        if "gateway_radius_listen" in updated and ctx.options.gateway_radius_listen:
            if not ctx.options.gateway_radius_secret_file:
                raise exceptions.OptionsError("gateway_radius_listen needs gateway_radius_secret_file")

    async def running(self) -> None:
        spec = ctx.options.gateway_radius_listen
        if not spec or self.listener is not None:
            return
        if self.sources.live is None:
            log.warning("RADIUS accounting not started: the identity sources are not running")
            return
        host, _, port = spec.rpartition(":")
        try:
            secret = Path(ctx.options.gateway_radius_secret_file).read_bytes().strip()
            allowed = [ipaddress.ip_network(c.strip(), strict=False)
                       for c in ctx.options.gateway_radius_clients.split(",") if c.strip()]
            listener = AccountingListener(secret, self.sources.live.on_accounting, host=host.strip("[]") or "0.0.0.0",
                                          port=int(port), allowed=allowed)
        except (OSError, ValueError) as e:
            log.error("RADIUS accounting not started: %s", e)
            return
        listener.start()
        self.listener = listener

    async def done(self) -> None:
        if self.listener is not None:
            await asyncio.to_thread(self.listener.stop)
            self.listener = None
