"""Proxy authentication for explicitly configured devices (shared desktops, staff laptops set to use the
proxy): HTTP Basic checked against the roster, or LDAP / Active Directory (spec as mitmproxy's `proxyauth`).

Unlike mitmproxy's `proxyauth` option, which applies to every client, this asks only the listed addresses,
and checks credentials in a worker thread so argon2 or an LDAP round trip never holds up the event loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path

from mitmproxy import connection, ctx, exceptions, http
from mitmproxy.addons.proxyauth import Ldap, make_auth_required_response, parse_http_basic_auth

from gateway.identity.ldap_auth import LdapSettings, LdapUnavailable, LdapValidator
from gateway.identity.proxy_auth import RosterValidator
from gateway.proxy.flow_state import flow_state
from gateway.proxy.identity_sources import IdentitySources
from gateway.store.engine import make_engine, session_factory

log = logging.getLogger(__name__)

Validator = Callable[[str, str], bool]

# At most one warning this often while the directory is away: every request would otherwise log one.
UNAVAILABLE_WARNING_SECONDS = 60.0


class ProxyAuthAddon:
    http_connect: Callable[[http.HTTPFlow], Awaitable[None]] | None
    requestheaders: Callable[[http.HTTPFlow], Awaitable[None]] | None

    def __init__(self, sources: IdentitySources) -> None:
        self.sources = sources
        self.validator: Validator | None = None
        self.clients: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        # Connections that authenticated with CONNECT: the requests inside the tunnel carry no header.
        self.authenticated: MutableMapping[connection.Client, str] = weakref.WeakKeyDictionary()
        self._engine = None
        self._warned_at = float("-inf")
        self._set_hooks()

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("gateway_proxy_auth", str, "",
                          "Proxy authentication for gateway_proxy_auth_clients: 'roster' (portal passwords) or "
                          "an LDAP spec as mitmproxy's proxyauth takes (ldap[s]:host[:port]:bind_dn:password:"
                          "subtree[?search_filter_key=...], e.g. search_filter_key=sAMAccountName for Active "
                          "Directory); empty: off.")
        loader.add_option("gateway_proxy_auth_ldap_ca", str, "",
                          "CA certificates (PEM file) that sign the directory's certificate for ldaps:; "
                          "empty: the system's. The certificate is always checked.")
        loader.add_option("gateway_proxy_auth_clients", str, "",
                          "Comma-separated client addresses or networks that must authenticate to the proxy.")

    def configure(self, updated: set[str]) -> None:
        if not {"gateway_proxy_auth", "gateway_proxy_auth_clients", "gateway_proxy_auth_ldap_ca"} & updated:
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
            # Parsed only: the directory is first asked when someone signs in, in a worker thread.
            use_ssl, host, port, bind_dn, bind_password, subtree, filter_key = Ldap.parse_spec(spec)
            ca_file = ctx.options.gateway_proxy_auth_ldap_ca or None
            if ca_file is not None and not Path(ca_file).is_file():
                raise exceptions.OptionsError(f"gateway_proxy_auth_ldap_ca: no such file: {ca_file}")
            self.validator = LdapValidator(LdapSettings(
                host=host, port=port, use_ssl=use_ssl, bind_dn=bind_dn, bind_password=bind_password,
                subtree=subtree, filter_key=filter_key, ca_file=ca_file,
            ))
        else:
            raise exceptions.OptionsError("gateway_proxy_auth must be 'roster' or an ldap[s]: spec")
        self._set_hooks()

    def _set_hooks(self) -> None:
        # mitmproxy calls only the hooks an addon has: with proxy authentication off (the usual case) this addon
        # costs no call, and no coroutine, per request.
        on = self.validator is not None and bool(self.clients)
        self.http_connect = self._http_connect if on else None
        self.requestheaders = self._requestheaders if on else None

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
        except LdapUnavailable as e:
            now = time.monotonic()
            if now - self._warned_at >= UNAVAILABLE_WARNING_SECONDS:
                self._warned_at = now
                log.warning("proxy authentication: the directory cannot check passwords, so everyone is asked "
                            "again: %s", e)
            ok = False
        except Exception:
            log.exception("proxy authentication: checking credentials for %r failed", username)
            ok = False
        if not ok:
            return None
        del flow.request.headers["Proxy-Authorization"]
        return username.strip().lower()

    async def _http_connect(self, flow: http.HTTPFlow) -> None:
        if not self._applies(flow):
            return
        username = await self._authenticate(flow)
        if username is None:
            flow.response = make_auth_required_response(True)
        else:
            self.authenticated[flow.client_conn] = username
            flow_state(flow).proxy_user = username

    async def _requestheaders(self, flow: http.HTTPFlow) -> None:
        if not self._applies(flow) or flow.response is not None:
            return
        username = self.authenticated.get(flow.client_conn)
        if username is None:
            username = await self._authenticate(flow)
        if username is None:
            flow.response = make_auth_required_response(True)
            return
        flow_state(flow).proxy_user = username
