"""Test-only mitmproxy script: every upstream connection goes to the local test origin.

Load it *first*, before the gateway's scripts, and name the origin::

    mitmdump -s tests/support/route_to_origin.py -s addons/gateway.py \\
        --set route_to_origin=127.0.0.1:41234 \\
        --set ssl_verify_upstream_trusted_ca=/tmp/.../origin-ca-cert.pem

(:class:`tests.support.mitmdump.Mitmdump` does this when given ``origin=``.)

How: in mitmproxy's ``server_connect`` hook, which runs just before mitmproxy opens a TCP
connection upstream and may change ``data.server.address`` while the connection is still closed,
the address becomes the origin's. That is after every request hook has run, so the gateway has
already decided, and blocked requests never reach the origin. The upstream TLS server name (SNI)
stays the requested name (mitmproxy sets it from the requested host before connecting), so the
origin (see :mod:`tests.support.origins`) presents a certificate for ``www.facebook.com`` which
mitmproxy verifies against the origin's CA, as it would a real site.

One thing needs putting back. After ``CONNECT www.facebook.com:443`` mitmproxy (with its default
``connection_strategy=eager``) connects upstream at once, and requests inside the tunnel take
their host and port from that connection's address, now the origin's. So in ``requestheaders``,
which runs before the gateway's because this script is loaded first, a request whose host is the
origin's address on a rerouted connection gets the address the client asked for back, set on
``request.data`` the way mitmproxy itself sets it for such requests. The gateway and its logs then
see ``https://www.facebook.com/...``, exactly as in production; only ``flow.server_conn.address``
shows the origin.

Because the rewrite is per connection, mitmproxy does not reuse an upstream connection for the
next request on the same client connection (its reuse check compares the requested host with the
rewritten address); each request opens a fresh loopback connection. That costs speed, not
correctness.
"""

from __future__ import annotations

import logging
import weakref

from mitmproxy import ctx, exceptions, http
from mitmproxy.addonmanager import Loader
from mitmproxy.connection import Address, Server
from mitmproxy.proxy import server_hooks
from mitmproxy.utils import human

logger = logging.getLogger(__name__)


class RouteToOrigin:
    def __init__(self) -> None:
        self.address: tuple[str, int] | None = None
        self.requested: weakref.WeakKeyDictionary[Server, Address] = weakref.WeakKeyDictionary()

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "route_to_origin",
            str,
            "",
            "host:port of the test origin; every upstream connection is sent there. Tests only.",
        )

    def configure(self, updated: set[str]) -> None:
        if "route_to_origin" not in updated:
            return
        value = ctx.options.route_to_origin
        if not value:
            self.address = None
            return
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise exceptions.OptionsError(f"route_to_origin must be host:port, not {value!r}")
        self.address = (host, int(port))

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        if self.address is None or data.server.via is not None or data.server.address == self.address:
            return
        logger.debug(
            f"route_to_origin: {human.format_address(data.server.address)} -> {human.format_address(self.address)}"
        )
        self.requested[data.server] = data.server.address
        data.server.address = self.address

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        requested = self.requested.get(flow.server_conn)
        if requested is not None and (flow.request.host, flow.request.port) == self.address:
            flow.request.data.host, flow.request.data.port = requested[0], requested[1]


addons = [RouteToOrigin()]
