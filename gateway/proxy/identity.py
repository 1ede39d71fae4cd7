"""Says who is behind each request, before any other gateway addon looks at it."""

from __future__ import annotations

from mitmproxy import http

from gateway.proxy.policy_source import PolicySource

IDENTITY = "gateway.identity"


class IdentityAddon:
    def __init__(self, policy: PolicySource) -> None:
        self.policy = policy

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if IDENTITY not in flow.metadata:
            client_ip = flow.client_conn.peername[0]
            flow.metadata[IDENTITY] = self.policy.current.networks.identify(client_ip)
