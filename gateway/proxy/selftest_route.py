"""Self-test requests (`gateway selftest`): decided as the signed token's group, and sent only to its test origin.

`SelftestRoute` comes before the identity part: it takes the `X-Gateway-Selftest` header out of every request (no
site ever sees it) and, for a token signed with the console's secret, gives the flow a self-test identity of the
token's group; a forged, expired or foreign token is logged and ignored, so the request is decided as whoever the
client really is. `SelftestDelivery` comes last, once every part has decided: an allowed self-test request goes to
the token's origin, a local test server, never to the host it names; and the decision is put on the response, so
the self-test can tell a flag from an allow. The access log still shows the host the request named.
"""

from __future__ import annotations

import ipaddress
import json
import logging

from mitmproxy import ctx, exceptions, http
from mitmproxy.proxy import server_hooks

from gateway.identity.types import Identity, IdentitySource
from gateway.proxy.flow_state import flow_state
from gateway.proxy.identity import client_ip
from gateway.proxy.policy_source import PolicySource
from gateway.selftest.token import HEADER, RESULT_HEADER, BadToken, SelftestToken, read, read_secret

log = logging.getLogger(__name__)

# flow.metadata key: the token of a self-test flow, and (host, port) the request named while it goes to the origin.
TOKEN = "gateway.selftest"
REQUESTED = "gateway.selftest.requested"


class SelftestRoute:
    def __init__(self, policy: PolicySource) -> None:
        self.policy = policy
        self.secret: str | None = None
        self.last = SelftestDelivery()

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option(
            "gateway_selftest_secret_file", str, "",
            "The console's secret file: `gateway selftest` tokens signed with it are honoured (none when empty).",
        )  # fmt: skip

    def configure(self, updated: set[str]) -> None:
        if "gateway_selftest_secret_file" in updated:
            path = ctx.options.gateway_selftest_secret_file
            try:
                self.secret = read_secret(path) or None if path else None
            except OSError as exc:
                raise exceptions.OptionsError(f"gateway_selftest_secret_file: {exc}") from None

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        text = flow.request.headers.pop(HEADER, None)
        if text is None:
            return
        token = self._honoured(flow, text)
        if token is None:
            return
        flow.metadata[TOKEN] = token
        flow_state(flow).identity = Identity(
            group=token.group, client_ip=client_ip(flow), source=IdentitySource.SELFTEST, username="selftest",
            display_name="Filter self-test", year_group=token.year_group, device="selftest",
        )  # fmt: skip

    def _honoured(self, flow: http.HTTPFlow, text: str) -> SelftestToken | None:
        if self.secret is None:
            log.warning("ignored a self-test token from %s: this gateway has no self-test secret", client_ip(flow))
            return None
        try:
            token = read(self.secret, text)
        except BadToken as exc:
            log.warning("ignored a self-test token from %s: %s", client_ip(flow), exc)
            return None
        if token.group not in self.policy.current.policy.groups:
            log.warning("ignored a self-test token from %s: unknown group %r", client_ip(flow), token.group)
            return None
        if not _local_origin(token.origin_host):
            log.warning("ignored a self-test token from %s: origin %s is not a local address", client_ip(flow),
                        token.origin_host)  # fmt: skip
            return None
        return token

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        _put_back(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        _put_back(flow)


class SelftestDelivery:
    """The part of `SelftestRoute` that must run after every part that decides."""

    def __init__(self) -> None:
        # (client connection id, origin) of the self-test requests sent on: the only connections to a local origin
        # any client can get, since the enforcer refuses every request that names one.
        self._routes: set[tuple[str, tuple[str, int]]] = set()

    def request(self, flow: http.HTTPFlow) -> None:
        token: SelftestToken | None = flow.metadata.get(TOKEN)
        if token is None or flow.response is not None or flow.error is not None:
            return
        flow.metadata[REQUESTED] = (flow.request.host, flow.request.port)
        flow.request.scheme = "http"
        flow.request.data.host, flow.request.data.port = token.origin
        self._routes.add((flow.client_conn.id, token.origin))

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        if (data.client.id, data.server.address) in self._routes:
            # The destination guard refuses loopback and private addresses, rightly for any request a client names;
            # this connection goes to the origin a signed token named, for a request every part has let through.
            data.server.error = None

    def client_disconnected(self, client) -> None:  # type: ignore[no-untyped-def]
        if self._routes:
            self._routes = {route for route in self._routes if route[0] != client.id}

    def response(self, flow: http.HTTPFlow) -> None:
        if TOKEN not in flow.metadata or flow.response is None:
            return
        _put_back(flow)
        decision = flow_state(flow).decision
        result = decision.as_dict() if decision is not None else {"action": "none"}
        result.pop("reason", None)
        flow.response.headers[RESULT_HEADER] = json.dumps(result)


def _put_back(flow: http.HTTPFlow) -> None:
    requested = flow.metadata.pop(REQUESTED, None)
    if requested is not None:
        flow.request.data.host, flow.request.data.port = requested


def _local_origin(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private

