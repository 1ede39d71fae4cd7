"""Test-only mitmproxy script: every upstream connection goes to the local test origin.

Load it *first*, before the gateway's scripts, and name the origin::

    mitmdump -s tests/support/route_to_origin.py -s addons/gateway.py \\
        --set route_to_origin=127.0.0.1:41234 \\
        --set ssl_verify_upstream_trusted_ca=/tmp/.../origin-ca-cert.pem

(:class:`tests.support.mitmdump.Mitmdump` does this when given ``origin=``.)

The gateway must see, decide on and log the names the client asked for (``www.facebook.com``),
while the bytes go to one loopback origin. mitmproxy's documented way to send a request elsewhere is
to change ``flow.request.host``/``port`` in the ``request`` hook, which picks the upstream connection
(and lets mitmproxy reuse it). This script does that, but hides it from every other addon:

- :class:`RouteToOrigin` sits where the script is loaded, first. Its ``responseheaders`` and ``error``
  hooks put the requested host and port back before any other addon sees the response, so the
  gateway sees the real URL in every hook.
- :class:`RouteToOriginLast` is appended to the very end of mitmproxy's addon chain (when the script
  loads), so its ``request`` hook runs after every gateway hook, once the gateway has decided. It
  changes only ``request.data.host``/``port``: the Host header is untouched. Requests the gateway
  answered itself (block pages) are left alone and never reach the origin.
- The upstream TLS server name (SNI) is set back to the requested name when the connection opens, so
  the origin (see :mod:`tests.support.origins`) presents a certificate for that name, which mitmproxy
  verifies against the origin's CA (``ssl_verify_upstream_trusted_ca``), as for a real site.

Connections opened before any ``request`` hook are caught in ``server_connect``, which runs just
before mitmproxy opens a TCP connection and may still change its address: the connection mitmproxy
opens at once for ``CONNECT www.facebook.com:443`` (its default ``connection_strategy=eager``), and
connections for streamed request bodies. Requests inside such a ``CONNECT`` tunnel take their host
and port from the tunnel's connection, now the origin's, so ``requestheaders`` here (first in the
chain) gives them back the address the client asked for, as mitmproxy itself sets it for them.

Everything else behaves as in production, except: ``flow.server_conn.address`` shows the origin, and
requests for different hosts on one client connection may share one upstream connection.
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

_REQUESTED = "route_to_origin.requested"
"""flow.metadata key: the (host, port) the request was for, while it is sent to the origin."""


class RouteToOrigin:
    def __init__(self) -> None:
        self.address: Address | None = None
        self.last = RouteToOriginLast(self)
        # Connections whose address server_connect changed, with the address they were for.
        self.rerouted: weakref.WeakKeyDictionary[Server, Address] = weakref.WeakKeyDictionary()
        # Per client connection: the host the latest request was routed for, to use as SNI.
        self.pending_sni: dict[str, str] = {}

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "route_to_origin",
            str,
            "",
            "host:port of the test origin; every upstream connection is sent there. Tests only.",
        )
        last = ctx.master.addons.get(RouteToOriginLast.name)
        if last is None:
            ctx.master.addons.add(self.last)
        else:  # the script was reloaded: the one already at the end serves this instance now
            last.first = self

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

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        requested = self.rerouted.get(flow.server_conn)
        if requested is not None and (flow.request.host, flow.request.port) == self.address:
            flow.request.data.host, flow.request.data.port = requested[0], requested[1]

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        if self.address is None or data.server.via is not None:
            return
        if data.server.address == self.address:
            sni = self.pending_sni.get(data.client.id)
            if sni and data.server.tls:
                data.server.sni = sni
            return
        logger.debug(
            f"route_to_origin: {human.format_address(data.server.address)} -> {human.format_address(self.address)}"
        )
        self.rerouted[data.server] = data.server.address
        data.server.address = self.address

    def client_disconnected(self, client) -> None:  # type: ignore[no-untyped-def]
        self.pending_sni.pop(client.id, None)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._put_back(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        self._put_back(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._put_back(flow)

    @staticmethod
    def _put_back(flow: http.HTTPFlow) -> None:
        requested = flow.metadata.pop(_REQUESTED, None)
        if requested is not None:
            flow.request.data.host, flow.request.data.port = requested


class RouteToOriginLast:
    """The part of :class:`RouteToOrigin` that must run after every other addon."""

    name = "route_to_origin_last"

    def __init__(self, first: RouteToOrigin) -> None:
        self.first = first

    def request(self, flow: http.HTTPFlow) -> None:
        address = self.first.address
        if address is None or flow.response is not None or flow.error is not None:
            return
        requested = (flow.request.host, flow.request.port)
        if requested == address:
            return
        flow.metadata[_REQUESTED] = requested
        self.first.pending_sni[flow.client_conn.id] = flow.request.host
        flow.request.data.host, flow.request.data.port = address


addons = [RouteToOrigin()]
