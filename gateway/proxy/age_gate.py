"""The age gate: a pupil below a site's minimum age on the day (roster date of birth, the school's time zone) is
kept from its sign-up pages, or from the whole site where the policy says so, with a block page that tells them
why in words a child understands.

- Each request the enforcer allowed is checked over every name it carries (destination, Host header, TLS server
  name, CONNECT target) and its path, in any spelling (`//SignUp/`, `%53ignup`, a query).
- A whole-site gate is also decided on the connection: a CONNECT to the site is answered by the gateway (no
  upstream connection; the block page shows inside the tunnel), and a connection about to be passed through
  untouched (a never-intercept host, or transparent mode) to the site is closed instead.

Place after the tunnel guard and the enforcer: it only narrows what they allowed.
"""

from __future__ import annotations

from datetime import date

from mitmproxy import http
from mitmproxy.proxy import layer

from gateway.proxy.block_response import block
from gateway.proxy.destination_guard import DestinationGuard
from gateway.proxy.flow_state import Connections, ConnectionState, flow_state
from gateway.proxy.identity import identity_of
from gateway.proxy.policy_source import PolicySource
from gateway.proxy.request_host import every_name
from gateway.proxy.tunnels import Record, RefusedConnection, RelayedConnection, established
from gateway.services.age_rules import AgeRule


class AgeGate:
    def __init__(self, policy: PolicySource, guard: DestinationGuard, connections: Connections,
                 record: Record) -> None:  # fmt: skip
        self.policy = policy
        self.guard = guard
        self.connections = connections
        self.record = record

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        state = flow_state(flow)
        if flow.response is not None or state.decision is None or state.decision.blocked:
            return
        compiled = self.policy.current
        identity = identity_of(flow, self.policy)
        if identity.group not in compiled.age.groups or state.instant is None:
            return
        day = state.instant.date()
        request = flow.request
        tunnel = self.connections.get(flow.client_conn.id)
        for name in every_name(flow, state.host, tunnel.target if tunnel else None):
            rule = compiled.age.blocks(identity, name, request.path, day)
            if rule is not None:
                state.decision = rule.decision(compiled.calendar.period(state.instant), name)
                block(flow, compiled.policy, state.decision, identity, state.instant, self.guard.request_form)
                return

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return  # refused, blocked or asked for credentials already
        tunnel = self.connections.get(flow.client_conn.id)
        if tunnel is None or tunnel.blocked or tunnel.target is None:
            return
        rule = self._whole_site(tunnel, tunnel.target)
        if rule is None:
            return
        self._close(tunnel, rule, tunnel.target)
        flow_state(flow).decision = tunnel.decision
        # Answered here: nothing upstream is contacted, and the block page shows inside the tunnel.
        flow.response = established(flow)
        self.record(tunnel, None)

    def next_layer(self, data: layer.NextLayer) -> None:
        if not isinstance(data.layer, RelayedConnection):
            return
        tunnel = self.connections.get(data.context.client.id)
        if tunnel is None:
            return
        for name in (tunnel.sni, tunnel.target):
            rule = self._whole_site(tunnel, name) if name else None
            if rule is not None:
                # Passed through, no page could be shown: the connection is closed instead.
                tunnel.relayed = False
                self._close(tunnel, rule, name or "")
                data.layer = RefusedConnection(data.context)
                self.record(tunnel, None)
                return

    def _whole_site(self, tunnel: ConnectionState, host: str) -> AgeRule | None:
        day: date = tunnel.instant.date()
        return self.policy.current.age.blocks_whole_site(tunnel.identity, host, day)

    def _close(self, tunnel: ConnectionState, rule: AgeRule, host: str) -> None:
        tunnel.decision = rule.decision(self.policy.current.calendar.period(tunnel.instant), host)
