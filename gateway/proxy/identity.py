"""Says who is behind each request and each CONNECT, before any other gateway part looks at it; and takes the
client-address header out of every request, so no client can speak for another."""

from __future__ import annotations

from mitmproxy import http

from gateway.identity.types import Identity
from gateway.proxy.flow_state import flow_state
from gateway.proxy.identity_sources import IdentitySources
from gateway.proxy.policy_source import PolicySource

# The header the web app reads the client address from. Only the portal part sets it, for the portal's own
# address; a client that sends it is forging another device's address.
CLIENT_IP_HEADER = "X-Gateway-Client-IP"


def client_ip(flow: http.HTTPFlow) -> str:
    peer = flow.client_conn.peername
    return peer[0] if peer else ""


def identity_of(flow: http.HTTPFlow, policy: PolicySource) -> Identity:
    """The identity the identity part found, or, where it could not run, the client's network's group (never more
    permissive than that)."""
    state = flow_state(flow)
    if state.identity is None:
        state.identity = policy.current.networks.identify(client_ip(flow))
    return state.identity


class IdentityAddon:
    def __init__(self, policy: PolicySource, sources: IdentitySources | None = None) -> None:
        self.policy = policy
        self.sources = sources

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._identify(flow)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        flow.request.headers.pop(CLIENT_IP_HEADER, None)
        self._identify(flow)

    def _identify(self, flow: http.HTTPFlow) -> None:
        state = flow_state(flow)
        if state.identity is not None:
            return
        if self.sources is not None:
            state.identity = self.sources.identify(client_ip(flow), state.proxy_user)
        else:
            state.identity = self.policy.current.networks.identify(client_ip(flow))
