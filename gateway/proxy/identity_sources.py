"""The identity sources inside the proxy: roster, device register, DHCP leases and live sessions (RADIUS,
portal), kept in memory by a background thread so `identify` is a few dict lookups per request."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

from mitmproxy import ctx

from gateway.identity.leases import LeaseFollower
from gateway.identity.live import LiveIdentity
from gateway.identity.resolver import Resolver
from gateway.identity.types import Identity
from gateway.policy.compiled import CompiledPolicy
from gateway.proxy.policy_source import PolicySource
from gateway.store.engine import NotMigrated, make_engine, require_migrated, session_factory

log = logging.getLogger(__name__)

# Set by the proxy-auth addon: the roster username whose credentials the request carried.
PROXY_USER = "gateway.proxy_user"
# How long an answer for an address is reused while the sessions and roster it came from are unchanged: a
# browser sends many requests a second, and the background reload replaces both objects at least this often.
REUSE_SECONDS = 1.0


class IdentitySources:
    def __init__(self, policy: PolicySource) -> None:
        self.policy = policy
        self.live: LiveIdentity | None = None
        self._compiled: CompiledPolicy | None = None
        self._engine = None
        # (client address, proxy user) -> (reuse until, bindings, directory, identity).
        self._recent: dict[tuple[str, str | None], tuple[float, object, object, Identity]] = {}

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("gateway_leases", str, "", "DHCP lease file to follow (dnsmasq or ISC dhcpd); empty: none.")
        loader.add_option("gateway_leases_format", str, "auto", "Lease file format.",
                          choices=("auto", "dnsmasq", "isc"))
        loader.add_option("gateway_identity_interval_ms", int, 1000,
                          "Milliseconds between reloads of identity sessions (portal sign-ins) from the database.")

    async def running(self) -> None:
        if self.live is not None:
            return
        compiled = self.policy.current
        resolver = Resolver.for_policy(compiled.policy)
        resolver.configure_policy(compiled.policy, compiled.networks)
        self._compiled = compiled
        leases = None
        if ctx.options.gateway_leases:
            leases = LeaseFollower(Path(ctx.options.gateway_leases), ctx.options.gateway_leases_format)
        self._engine = make_engine(ctx.options.gateway_db)
        live = LiveIdentity(resolver, session_factory(self._engine), leases,
                            interval=ctx.options.gateway_identity_interval_ms / 1000)
        try:
            await asyncio.to_thread(require_migrated, self._engine)
            await asyncio.to_thread(live.start)
        except NotMigrated as exc:
            # A warning, not an error: the proxy still filters, every client at its network's group.
            log.warning("identity sources off, clients are identified by network only: %s", exc)
            return
        except Exception as exc:
            log.warning("identity sources off, clients are identified by network only: %s", exc)
            return
        self.live = live
        log.info("identity sources running: %d people, %d devices, %d live sessions",
                 len(resolver.directory.people), len(resolver.directory.devices_by_mac),
                 sum(len(b) for b in resolver.bindings.values()))

    async def done(self) -> None:
        if self.live is not None:
            await asyncio.to_thread(self.live.stop)
            self.live = None
        if self._engine is not None:
            self._engine.dispose()

    def identify(self, client_ip: str, proxy_user: str | None = None) -> Identity:
        compiled = self.policy.current
        live = self.live
        if live is None:
            return compiled.networks.identify(client_ip)
        resolver = live.resolver
        if compiled is not self._compiled:
            resolver.configure_policy(compiled.policy, compiled.networks)
            self._compiled = compiled
            self._recent.clear()
        now = datetime.now(UTC)
        resolver.activity[client_ip] = now
        key = (client_ip, proxy_user)
        clock = time.monotonic()
        recent = self._recent.get(key)
        if (
            recent is not None
            and clock < recent[0]
            and recent[1] is resolver.bindings
            and recent[2] is resolver.directory
        ):
            return recent[3]
        identity = resolver.resolve(client_ip, now, proxy_user)
        self._recent[key] = (clock + REUSE_SECONDS, resolver.bindings, resolver.directory, identity)
        return identity
