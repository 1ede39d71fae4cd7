"""Keeps the gateway's own services and the school's internal networks out of reach through the proxy.

Two checks: on the name a client asks for (every spelling of an IP literal, `localhost`), and on the addresses a
name resolves to, just before the gateway connects. The second check resolves the name itself and connects to the
address it checked, so a name that answers differently the second time (DNS rebinding) cannot slip through; the
connection gets its name back once open, so mitmproxy still reuses it for that name and sends the right TLS name.
Only the portal and console, at the URL the gateway was given, and the services the policy lists stay reachable.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import weakref
from collections.abc import Sequence
from urllib.parse import urlsplit

from mitmproxy import ctx, exceptions
from mitmproxy.connection import Server
from mitmproxy.proxy import server_hooks

from gateway.decisions.destinations import (
    BadReachable,
    InternalAddresses,
    IPAddress,
    Reachable,
    is_local_name,
    parse_reachable,
)
from gateway.lists.hosts import is_ip_literal, normalise_host
from gateway.policy.compiled import CompiledPolicy
from gateway.proxy.policy_source import PolicySource

log = logging.getLogger(__name__)

REFUSED = "the school web gateway does not connect to internal addresses"


class DestinationGuard:
    def __init__(self, policy: PolicySource) -> None:
        self.policy = policy
        self.portal: tuple[str, int] | None = None
        # The gateway's own request form, where a block page's "Ask for access" goes when the policy names none.
        self.request_form: str | None = None
        self._extra: tuple[Reachable, ...] = ()
        self._portal_reachable: tuple[Reachable, ...] = ()
        self._built_for: CompiledPolicy | None = None
        self._internal = InternalAddresses()
        # Connections whose address was pinned to the checked IP, with the name they were opened for.
        self._pinned: weakref.WeakKeyDictionary[Server, tuple[str, int]] = weakref.WeakKeyDictionary()
        self._own: dict[IPAddress, bool] = {}

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option(
            "gateway_reachable_internal", Sequence[str], [],
            "Internal services clients may reach through this gateway, besides the policy's "
            "connections.reachable_internal: address, address:port or network:port.",
        )  # fmt: skip

    def configure(self, updated: set[str]) -> None:
        if "gateway_reachable_internal" in updated:
            try:
                self._extra = tuple(parse_reachable(e) for e in ctx.options.gateway_reachable_internal)
            except BadReachable as exc:
                raise exceptions.OptionsError(f"gateway_reachable_internal: {exc}") from None
            self._built_for = None
        if "gateway_portal_url" in updated and "gateway_portal_url" in ctx.options:
            self.portal, self._portal_reachable = _portal(ctx.options.gateway_portal_url)
            base = ctx.options.gateway_portal_url.rstrip("/")
            self.request_form = f"{base}/request" if base else None
            self._built_for = None

    def internal(self) -> InternalAddresses:
        compiled = self.policy.current
        if compiled is not self._built_for:
            connections = compiled.policy.connections
            networks = [*connections.internal_networks, *(s for n in compiled.policy.networks for s in n.subnets)]
            reachable = [*map(parse_reachable, connections.reachable_internal), *self._extra, *self._portal_reachable]
            self._internal = InternalAddresses(networks, reachable)
            self._built_for = compiled
        return self._internal

    def is_portal(self, host: str, port: int) -> bool:
        return self.portal is not None and (host, port) == self.portal

    def refuses_host(self, host: str, port: int) -> bool:
        """For a normalised host a client asked for, before anything is looked up."""
        return not self.is_portal(host, port) and self.internal().refuses_host(host, port)

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        server = data.server
        if server.error or server.address is None or server.via is not None:
            return
        host, port = server.address
        name = normalise_host(host)
        if name is None:
            server.error = f"not a valid host: {host!r}"
            return
        if self.is_portal(name, port):
            return
        if is_ip_literal(name):
            if self._refuses_address(ipaddress.ip_address(name), port):
                server.error = REFUSED
                log.warning("refused a connection from %s to %s", data.client.peername[0], server.address)
            return
        if is_local_name(name):
            server.error = REFUSED
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return  # mitmproxy's own connect reports the name that does not resolve
        addresses = [ipaddress.ip_address(info[4][0].partition("%")[0]) for info in infos]
        refused = [str(a) for a in addresses if self._refuses_address(a, port)]
        if refused:
            server.error = REFUSED
            log.warning("refused a connection from %s to %s: it resolves to internal %s",
                        data.client.peername[0], host, ", ".join(refused))  # fmt: skip
            return
        self._pinned[server] = (host, port)
        server.address = (str(addresses[0]), port)

    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        name = self._pinned.pop(data.server, None)
        if name is not None:
            # Give the open connection back the name it was opened for, the state mitmproxy is in when it resolves
            # a name itself (address the name, peername the IP): requests inside a tunnel take their host from it,
            # and a later request for that name reuses it. `Server.__setattr__` refuses any change of address on an
            # open connection, to stop a redirect that could no longer happen; this is not one, so it is set as is.
            object.__setattr__(data.server, "address", name)

    def _refuses_address(self, ip: IPAddress, port: int) -> bool:
        return self.internal().refuses(ip, port) or (self._is_own(ip) and not self._reachable(ip, port))

    def _reachable(self, ip: IPAddress, port: int) -> bool:
        return any(r.admits(ip, port) for r in self.internal().reachable)

    def _is_own(self, ip: IPAddress) -> bool:
        """Whether an address belongs to this machine: only a local address can be bound to."""
        own = self._own.get(ip)
        if own is None:
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind((str(ip), 0))
                    own = True
                except OSError:
                    own = False
            if len(self._own) > 4096:
                self._own.clear()
            self._own[ip] = own
        return own


def _portal(url: str) -> tuple[tuple[str, int] | None, tuple[Reachable, ...]]:
    if not url:
        return None, ()
    parts = urlsplit(url.rstrip("/"))
    host = normalise_host(parts.hostname or "")
    if host is None:
        raise exceptions.OptionsError(f"gateway_portal_url: not a valid host: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    reachable = (Reachable(ipaddress.ip_network(host), port),) if is_ip_literal(host) else ()
    return (host, port), reachable
