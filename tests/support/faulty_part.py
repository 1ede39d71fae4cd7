"""Test-only mitmproxy script: breaks one part of the gateway inside the running proxy, to show it fails closed.

Loaded after addons/gateway.py. Any request or CONNECT whose host contains "explode" makes the decision engine
raise (as a bug would); hosts containing "identity-explode" make the identity part raise instead.
"""

from __future__ import annotations

import gateway.proxy.enforcer as enforcer
import gateway.proxy.identity as identity
import gateway.proxy.tunnels as tunnels

_decide = enforcer.decide
_identify = identity.IdentityAddon._identify


def exploding_decide(policy, who, host, path, instant, *args):  # type: ignore[no-untyped-def]
    if "explode" in host:
        raise RuntimeError(f"test fault while deciding {host}")
    return _decide(policy, who, host, path, instant, *args)


def exploding_identify(self, flow):  # type: ignore[no-untyped-def]
    if "identity-explode" in flow.request.host:
        raise RuntimeError("test fault in the identity part")
    return _identify(self, flow)


enforcer.decide = exploding_decide
tunnels.decide = exploding_decide
identity.IdentityAddon._identify = exploding_identify
addons: list[object] = []
