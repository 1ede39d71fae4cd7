"""Says who is behind each request, before any other gateway addon looks at it."""

from __future__ import annotations

from mitmproxy import http

from gateway.proxy.identity_sources import PROXY_USER, IdentitySources
from gateway.proxy.policy_source import PolicySource

IDENTITY = "gateway.identity"


class IdentityAddon:
    def __init__(self, policy: PolicySource, sources: IdentitySources | None = None) -> None:
        self.policy = policy
        self.sources = sources

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if IDENTITY not in flow.metadata:
            client_ip = flow.client_conn.peername[0]
            if self.sources is not None:
                flow.metadata[IDENTITY] = self.sources.identify(client_ip, flow.metadata.get(PROXY_USER))
            else:
                flow.metadata[IDENTITY] = self.policy.current.networks.identify(client_ip)
