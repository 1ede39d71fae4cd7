"""Transparent mode: a request's destination is the name the device asked for, not the address it sent it to.

In transparent mode mitmproxy takes a request's host from the address the packets were sent to (the redirect's
original destination), an IP. Deciding and logging by that IP would let an allow-list policy block every site (no IP
is on a list), fill the access log with addresses instead of sites, and let a device that forges its Host header
reach any address it likes. So the request's host becomes the name in its Host header (the server name inside TLS
says the same, and the enforcer decides over both), the port stays the one the device connected to, and the gateway
connects to where that name resolves, as it does for a device that uses it as its proxy: the destination guard
resolves and checks it, and the address the device chose is never contacted for this request.
"""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.proxy.mode_specs import TransparentMode

from gateway.lists.hosts import normalise_host
from gateway.proxy.request_host import pretty_host


class TransparentDestination:
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if not isinstance(flow.client_conn.proxy_mode, TransparentMode) or flow.response is not None:
            return
        request = flow.request
        named = pretty_host(request)
        # No Host header (or one the gateway cannot read) leaves the address, which the enforcer then decides on.
        name = normalise_host(named) if named and named != request.host else None
        if name is not None and name != request.host:
            request.host = name
