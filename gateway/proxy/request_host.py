"""`Request.pretty_host` without its cost in the usual case.

mitmproxy's `pretty_host` parses and IDNA-checks the Host header on every read. A browser using the proxy sends
a Host header that repeats the request line's host, and then `pretty_host` is that host: return it without the
parse. Anything else (a port, brackets, a different name, HTTP/2's authority) takes mitmproxy's own path.
"""

from __future__ import annotations

from mitmproxy import http

from gateway.lists.hosts import normalise_host


def pretty_host(request: http.Request) -> str:
    host = request.host
    authority = request.host_header
    if authority is None or authority == host:
        return host
    return request.pretty_host


def every_name(flow: http.HTTPFlow, destination: str | None, target: str | None = None) -> list[str]:
    """Every host name the request carries, normalised, once each: the destination decided on, the Host header,
    the TLS server name and (given) the CONNECT target. A guard that acts on any of them is not dodged by the
    others."""
    names = [destination] if destination else []
    for raw in (pretty_host(flow.request), flow.client_conn.sni, target):
        name = normalise_host(raw) if raw else None
        if name and name not in names:
            names.append(name)
    return names
