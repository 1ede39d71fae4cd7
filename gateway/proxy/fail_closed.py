"""What the gateway does when one of its parts raises while deciding: block, never pass.

mitmproxy runs a script's addon inside one error guard that logs the exception and carries on, which would skip
the enforcer and forward the request unfiltered and unlogged. The addon chain calls these instead, per hook: a
request gets the block page ("the gateway could not check this page") and a log row; so does a response whose
content could not be analysed (the access log, skipped with the parts after the one that raised, is called here);
a CONNECT's tunnel is marked failed, so every request in it is blocked; a connection that cannot be decided is
closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mitmproxy import http
from mitmproxy.proxy import layer, server_hooks

from gateway.decisions.types import PeriodKind
from gateway.proxy.block_response import block, refuse
from gateway.proxy.clock import Clock
from gateway.proxy.enforcer import FAILED_REASON, failed_decision
from gateway.proxy.flow_state import Connections, ConnectionState, flow_state
from gateway.proxy.identity import identity_of
from gateway.proxy.policy_source import PolicySource
from gateway.proxy.tunnels import RefusedConnection, established

log = logging.getLogger(__name__)


class FailClosed:
    def __init__(self, policy: PolicySource, clock: Clock, connections: Connections,
                 log_response: Callable[[http.HTTPFlow], None] | None = None) -> None:  # fmt: skip
        self.policy = policy
        self.log_response = log_response
        self.clock = clock
        self.connections = connections

    def handlers(self) -> dict[str, Callable[..., None]]:
        """Hook name -> what to do with the hook's arguments once a part has raised."""
        return {
            "requestheaders": self.request,
            "request": self.request,
            "response": self.response,
            "http_connect": self.connect,
            "next_layer": self.next_layer,
            "tls_clienthello": self.clienthello,
            "server_connect": self.server_connect,
        }

    def request(self, flow: http.HTTPFlow) -> None:
        try:
            compiled = self.policy.current
            state = flow_state(flow)
            identity = identity_of(flow, self.policy)
            instant = state.instant or compiled.calendar.local(self.clock.now())
            state.instant = instant
            state.decision = failed_decision(compiled.calendar.period(instant), (state.host or flow.request.host).lower())
            block(flow, compiled.policy, state.decision, identity, instant)
        except Exception:
            log.exception("could not even make the failure page; refusing with a plain answer")
            flow_state(flow).decision = failed_decision(PeriodKind.LESSON, flow.request.host.lower())
            refuse(flow, 403, FAILED_REASON)

    def response(self, flow: http.HTTPFlow) -> None:
        self.request(flow)
        if self.log_response is not None:
            self.log_response(flow)

    def connect(self, flow: http.HTTPFlow) -> None:
        tunnel = self.connections.get(flow.client_conn.id)
        if tunnel is None:
            compiled = self.policy.current
            tunnel = ConnectionState(identity=identity_of(flow, self.policy),
                                     instant=compiled.calendar.local(self.clock.now()))  # fmt: skip
            self.connections.put(flow.client_conn.id, tunnel)
        tunnel.failed = True
        # The tunnel opens without an upstream connection, so the failure page can show in it.
        flow.response = established(flow)

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        nextlayer.layer = RefusedConnection(nextlayer.context)

    def clienthello(self, data: Any) -> None:
        data.establish_server_tls_first = False
        tunnel = self.connections.get(data.context.client.id)
        if tunnel is not None:
            tunnel.failed = True

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        data.server.error = "the school web gateway could not check this connection"
