"""Runs the RADIUS accounting listener inside the proxy, feeding the identity sources.

One process on the machine listens (the WiFi controller sends to one port): among `gateway run --workers N`, the
worker holding `radius.lock` in the spool folder. What it hears becomes identity sessions in the store, which
every worker's identity sources reload each second, so a device signed in on the WiFi is known on whichever worker
it reaches. If the listening worker dies the kernel lets go of its lock and another worker takes the port over
within `TURN_SECONDS`."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from pathlib import Path

from mitmproxy import ctx, exceptions

from gateway.identity.radius import AccountingListener
from gateway.proxy.identity_sources import IdentitySources
from gateway.store.machine_lock import MachineLock

log = logging.getLogger(__name__)

# Seconds between a worker's tries at the listener while another worker has it.
TURN_SECONDS = 5.0


class RadiusListenerAddon:
    def __init__(self, sources: IdentitySources) -> None:
        self.sources = sources
        self.listener: AccountingListener | None = None
        self._lock: MachineLock | None = None
        self._waiting: asyncio.Task[None] | None = None

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
        if not ctx.options.gateway_radius_listen or self.listener is not None or self._waiting is not None:
            return
        if self.sources.live is None:
            log.warning("RADIUS accounting not started: the identity sources are not running")
            return
        self._lock = MachineLock(Path(ctx.options.gateway_spool) / "radius.lock")
        if not self._lock.take():
            log.info("RADIUS accounting is heard by another worker on this machine; this one takes over if it stops")
            self._waiting = asyncio.create_task(self._wait_for_turn())
            return
        self._start()

    async def _wait_for_turn(self) -> None:
        assert self._lock is not None
        while not self._lock.take():
            await asyncio.sleep(TURN_SECONDS)
        log.info("RADIUS accounting: taking the listener over")
        self._waiting = None
        self._start()

    def _start(self) -> None:
        assert self.sources.live is not None
        host, _, port = ctx.options.gateway_radius_listen.rpartition(":")
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
        if self._waiting is not None:
            self._waiting.cancel()
            self._waiting = None
        if self.listener is not None:
            await asyncio.to_thread(self.listener.stop)
            self.listener = None
        if self._lock is not None:
            self._lock.release()
