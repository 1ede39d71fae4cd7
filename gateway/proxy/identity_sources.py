"""The identity sources inside the proxy: roster, device register, DHCP leases and live sessions (RADIUS,
portal), kept in memory by a background thread so `identify` is a few dict lookups per request.

A store that is away (or not migrated) at start-up is tried again in the background, with backoff, until it
answers; until then clients are identified by network. Nothing on the event loop waits for the database."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

from mitmproxy import ctx
from sqlalchemy import Engine

from gateway.identity.leases import LeaseFollower
from gateway.identity.live import LiveIdentity
from gateway.identity.resolver import Resolver
from gateway.identity.types import Identity
from gateway.policy.compiled import CompiledPolicy
from gateway.proxy.policy_source import PolicySource
from gateway.store.engine import StallGuard, make_engine, require_migrated, session_factory

log = logging.getLogger(__name__)

# How long an answer for an address is reused while the sessions and roster it came from are unchanged: a
# browser sends many requests a second, and the background reload replaces both objects at least this often.
REUSE_SECONDS = 1.0
# Seconds between attempts to reach a store that was away at start-up: doubling from the first to the most.
RETRY_FIRST = 1.0
RETRY_MAX = 15.0
# Seconds a statement, and a whole reload of sessions and roster, may take before it counts as the store away.
STATEMENT_TIMEOUT = 10.0
STALL_SECONDS = 20.0


class IdentitySources:
    def __init__(self, policy: PolicySource) -> None:
        self.policy = policy
        self.live: LiveIdentity | None = None
        self._compiled: CompiledPolicy | None = None
        self._engine: Engine | None = None
        self._guard: StallGuard | None = None
        # Trying to reach the store in the background, while it is away.
        self._retrying: asyncio.Task[None] | None = None
        # (client address, proxy user) -> (reuse until, bindings, directory, identity).
        self._recent: dict[tuple[str, str | None], tuple[float, object, object, Identity]] = {}

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("gateway_leases", str, "", "DHCP lease file to follow (dnsmasq or ISC dhcpd); empty: none.")
        loader.add_option("gateway_leases_format", str, "auto", "Lease file format.",
                          choices=("auto", "dnsmasq", "isc"))
        loader.add_option("gateway_identity_interval_ms", int, 1000,
                          "Milliseconds between reloads of identity sessions (portal sign-ins) from the database.")

    async def running(self) -> None:
        if self.live is not None or self._retrying is not None:
            return
        self._engine = make_engine(ctx.options.gateway_db, statement_timeout=STATEMENT_TIMEOUT)
        self._guard = StallGuard(self._engine, STALL_SECONDS)
        leases = Path(ctx.options.gateway_leases) if ctx.options.gateway_leases else None
        settings = (leases, ctx.options.gateway_leases_format, ctx.options.gateway_identity_interval_ms / 1000)
        # The first attempt is awaited, in a thread: the event loop goes on serving while it waits, and a store that
        # answers is in use before the proxy says it is ready.
        started = await asyncio.to_thread(self._start, *settings)
        if not isinstance(started, str):
            self._went_live(*started)
            return
        log.warning("identity sources off until the database answers, trying again in the background; clients are "
                    "identified by network only: %s", started)  # fmt: skip
        self._retrying = asyncio.create_task(self._retry(settings))

    def _start(
        self, leases: Path | None, leases_format: str, interval: float
    ) -> tuple[LiveIdentity, CompiledPolicy] | str:
        """In a thread: the live sources, started, and the policy they were set up for; or why they could not be."""
        assert self._engine is not None and self._guard is not None
        live: LiveIdentity | None = None
        try:
            # Before anything is made: a lease follower made and dropped on every try would report a bad lease
            # line every time.
            with self._guard:
                require_migrated(self._engine)
            compiled = self.policy.current
            resolver = Resolver.for_policy(compiled.policy)
            resolver.configure_policy(compiled.policy, compiled.networks)
            follower = LeaseFollower(leases, leases_format) if leases is not None else None
            live = LiveIdentity(resolver, session_factory(self._engine), follower, interval=interval,
                                guard=self._guard)  # fmt: skip
            live.start()
        except Exception as exc:  # noqa: BLE001  unreachable, refused, not migrated: all mean "not yet"
            if live is not None:
                live.stop()
            orig = getattr(exc, "orig", None) or exc
            return str(orig).strip().partition("\n")[0] or type(orig).__name__
        return live, compiled

    async def _retry(self, settings: tuple[Path | None, str, float]) -> None:
        delay = RETRY_FIRST
        while True:
            await asyncio.sleep(delay)
            started = await asyncio.to_thread(self._start, *settings)
            if not isinstance(started, str):
                self._retrying = None
                self._went_live(*started)
                return
            log.debug("identity sources still off: %s", started)
            delay = min(delay * 2, RETRY_MAX)

    def _went_live(self, live: LiveIdentity, compiled: CompiledPolicy) -> None:
        resolver = live.resolver
        self._compiled = compiled
        self._recent.clear()
        self.live = live
        log.info("identity sources running: %d people, %d devices, %d live sessions",
                 len(resolver.directory.people), len(resolver.directory.devices_by_mac),
                 sum(len(b) for b in resolver.bindings.values()))

    async def done(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
            self._retrying = None
        if self.live is not None:
            await asyncio.to_thread(self.live.stop)
            self.live = None
        if self._guard is not None:
            self._guard.close()
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
