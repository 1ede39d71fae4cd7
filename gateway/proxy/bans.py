"""The supervised-only bans in this proxy: what the grant follower last read from the store (its one poll covers the
`bans` counter too), made into the `BanSet` the engine is handed with the grants, so every decision (each request,
CONNECT, TLS server name and connection whose destination comes with it) sees them.

While the store is away the bans read last stay in force; a policy reload keeps them (they are the follower's,
not the policy's). A ban's end and a supervised session's end are checked at each decision, in real time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from mitmproxy import ctx

from gateway.lists.hosts import normalise_host
from gateway.policy.bans import BanSet, entry
from gateway.proxy.identity_sources import IdentitySources
from gateway.store.bans import BanInForce

log = logging.getLogger(__name__)


class BanKeeper:
    def __init__(self, identities: IdentitySources) -> None:
        self.identities = identities
        # None while nobody is banned: the engine's one check costs nothing then.
        self.current: BanSet | None = None
        self._rows: tuple[BanInForce, ...] = ()
        self._own_host: str | None = None
        self._listeners: list[Callable[[], None]] = []
        self._owners_of: object = None
        self._owners: dict[str, str] = {}

    def configure(self, updated: set[str]) -> None:
        if "gateway_portal_url" in updated and "gateway_portal_url" in ctx.options:
            url = ctx.options.gateway_portal_url
            self._own_host = normalise_host(urlsplit(url).hostname or "") if url else None
            self._build()

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def take(self, rows: Sequence[BanInForce]) -> None:
        """The bans in force as the store has them now."""
        self._rows = tuple(rows)
        self._build()

    def _build(self) -> None:
        bans = {row.username.lower(): entry(row.ban_id, row.ends_at, row.supervised_until) for row in self._rows}
        # One reference assignment: a decision in flight keeps the set it started with.
        self.current = BanSet(bans, self._own_host, self._device_owner) if bans else None
        for listener in self._listeners:
            listener()

    def _device_owner(self, device: str) -> str | None:
        """The person a registered device is assigned to, from the device register the identity sources hold."""
        live = self.identities.live
        if live is None:
            return None
        directory = live.resolver.directory
        if directory is not self._owners_of:
            # Asked only while someone is banned, for a device nobody is signed in on; made again per directory.
            self._owners = {d.name: d.username for d in directory.devices_by_mac.values() if d.username}
            self._owners_of = directory
        return self._owners.get(device)
