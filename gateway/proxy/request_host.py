"""`Request.pretty_host` without its cost in the usual case.

mitmproxy's `pretty_host` parses and IDNA-checks the Host header on every read. A browser using the proxy sends
a Host header that repeats the request line's host, and then `pretty_host` is that host: return it without the
parse. Anything else (a port, brackets, a different name, HTTP/2's authority) takes mitmproxy's own path.
"""

from __future__ import annotations

from mitmproxy import http


def pretty_host(request: http.Request) -> str:
    host = request.host
    authority = request.host_header
    if authority is None or authority == host:
        return host
    return request.pretty_host
