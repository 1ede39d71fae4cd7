"""Proxy authentication for explicitly configured devices (shared desktops, staff laptops set to use the
proxy): HTTP Basic checked against the roster, or LDAP / Active Directory through mitmproxy's own validator.

Unlike mitmproxy's `proxyauth` option, which applies to every client, this asks only the listed addresses,
and checks credentials in a worker thread so argon2 or an LDAP round trip never holds up the event loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import weakref
from collections.abc import Callable, MutableMapping

from mitmproxy import connection, ctx, exceptions, http
from mitmproxy.addons.proxyauth import Ldap, make_auth_required_response, parse_http_basic_auth

from gateway.identity.proxy_auth import RosterValidator
from gateway.proxy.identity_sources import PROXY_USER, IdentitySources
from gateway.store.engine import make_engine, session_factory

Validator = Callable[[str, str], bool]


class ProxyAuthAddon:
    def __init__(self, sources: IdentitySources) -> None:
        self.sources = sources
        self.validator: Validator | None = None
        self.clients: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        # Connections that authenticated with CONNECT: the requests inside the tunnel carry no header.
        self.authenticated: MutableMapping[connection.Client, str] = weakref.WeakKeyDictionary()
        self._engine = None

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("gateway_proxy_auth", str, "",
                          "Proxy authentication for gateway_proxy_auth_clients: 'roster' (portal passwords) or "
                          "an LDAP spec as mitmproxy's proxyauth takes (ldap[s]:host[:port]:bind_dn:password:"
                          "subtree[?search_filter_key=...]); empty: off.")
        loader.add_option("gateway_proxy_auth_clients", str, "",
                          "Comma-separated client addresses or networks that must authenticate to the proxy.")

    def configure(self, updated: set[str]) -> None:
        if not {"gateway_proxy_auth", "gateway_proxy_auth_clients"} & updated:
            return
        spec = ctx.options.gateway_proxy_auth
        try:
            self.clients = [ipaddress.ip_network(c.strip(), strict=False)
                            for c in ctx.options.gateway_proxy_auth_clients.split(",") if c.strip()]
        except ValueError as e:
            raise exceptions.OptionsError(f"gateway_proxy_auth_clients: {e}") from None
        if not spec:
            self.validator = None
        elif spec == "roster":
            if self._engine is None:
                self._engine = make_engine(ctx.options.gateway_db)
            self.validator = RosterValidator(session_factory(self._engine))
        elif spec.startswith("ldap"):
            self.validator = Ldap(spec)
        else:
            raise exceptions.OptionsError("gateway_proxy_auth must be 'roster' or an ldap[s]: spec")

    def done(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def _applies(self, flow: http.HTTPFlow) -> bool:
        if self.validator is None or not self.clients:
            return False
        try:
            address = ipaddress.ip_address(flow.client_conn.peername[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in net for net in self.clients)

    async def _authenticate(self, flow: http.HTTPFlow) -> str | None:
        assert self.validator is not None
        try:
            _, username, password = parse_http_basic_auth(flow.request.headers.get("Proxy-Authorization", ""))
        except ValueError:
            return None
        try:
            ok = await asyncio.to_thread(self.validator, username, password)
        except Exception:
            ok = False
        if not ok:
            return None
        del flow.request.headers["Proxy-Authorization"]
        return username.strip().lower()

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        if not self._applies(flow):
            return
        username = await self._authenticate(flow)
        if username is None:
            flow.response = make_auth_required_response(True)
        else:
            self.authenticated[flow.client_conn] = username

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if not self._applies(flow) or flow.response is not None:
            return
        username = self.authenticated.get(flow.client_conn)
        if username is None:
            username = await self._authenticate(flow)
        if username is None:
            flow.response = make_auth_required_response(True)
            return
        flow.metadata[PROXY_USER] = username
