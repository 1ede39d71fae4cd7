"""Carries out the policy on every request: decides from its headers over every name it carries (destination,
Host header, TLS server name, the tunnel's CONNECT target), the strictest standing, and blocks with a block page.
The destination is never an internal address; a tunnel whose connection was refused or failed blocks every
request in it."""

from __future__ import annotations

import logging

from mitmproxy import http

from gateway.decisions.engine import decide
from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.lists.hosts import normalise_host
from gateway.proxy.block_response import block, refuse
from gateway.proxy.clock import Clock
from gateway.proxy.destination_guard import DestinationGuard
from gateway.proxy.flow_state import Connections, FlowState, flow_state
from gateway.proxy.grant_follower import GrantFollower
from gateway.proxy.identity import identity_of
from gateway.proxy.policy_source import PolicySource
from gateway.proxy.request_host import pretty_host

log = logging.getLogger(__name__)

# Strictest first: when the names disagree, the stricter decision stands; on a tie, the earlier name.
SEVERITY = {Action.BLOCK: 0, Action.FLAG: 1, Action.ALLOW: 2}

INTERNAL_REASON = "The school's internal network and the gateway's own services cannot be reached through the filter."
FAILED_REASON = "The school web gateway could not check this page, so it is blocked to keep you safe."


class Enforcer:
    def __init__(self, policy: PolicySource, clock: Clock, guard: DestinationGuard, connections: Connections,
                 grants: GrantFollower) -> None:  # fmt: skip
        self.grants = grants
        self.policy = policy
        self.clock = clock
        self.guard = guard
        self.connections = connections

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.error is not None:
            return
        compiled = self.policy.current
        state = flow_state(flow)
        identity = identity_of(flow, self.policy)
        instant = state.instant = compiled.calendar.local(self.clock.now())
        request = flow.request
        destination = normalise_host(request.host)
        if destination is None:
            self._refuse_malformed(flow, state, request.host)
            return
        state.host, state.port = destination, request.port
        if self.guard.refuses_host(destination, request.port):
            period = compiled.calendar.period(instant)
            state.decision = Decision(Action.BLOCK, Source.CONNECTION, INTERNAL_REASON, period, destination,
                                      rule="internal-address")  # fmt: skip
            block(flow, compiled.policy, state.decision, identity, instant, self.guard.request_form)
            return
        grants = self.grants.exceptions_for(compiled)
        decision = decide(compiled, identity, destination, request.path, instant, grants)
        tunnel = self.connections.get(flow.client_conn.id)
        if tunnel is not None and tunnel.failed:
            decision = failed_decision(compiled.calendar.period(instant), destination)
        else:
            for raw in self._other_names(request, destination, tunnel.target if tunnel else None, flow):
                host = normalise_host(raw)
                if host is None:
                    self._refuse_malformed(flow, state, raw)
                    return
                candidate = decide(compiled, identity, host, request.path, instant, grants)
                if SEVERITY[candidate.action] < SEVERITY[decision.action]:
                    decision = candidate
            if tunnel is not None and tunnel.decision is not None:
                if SEVERITY[tunnel.decision.action] < SEVERITY[decision.action]:
                    decision = tunnel.decision
        self._settle(flow, state, decision)

    def _settle(self, flow: http.HTTPFlow, state: FlowState, decision: Decision) -> None:
        state.decision = decision
        if decision.action is Action.BLOCK:
            assert state.identity is not None and state.instant is not None
            earlier = self.grants.earlier_request(state.identity, decision.host)
            block(flow, self.policy.current.policy, decision, state.identity, state.instant, self.guard.request_form,
                  earlier)  # fmt: skip

    @staticmethod
    def _other_names(request: http.Request, destination: str, target: str | None, flow: http.HTTPFlow) -> list[str]:
        """The names besides the destination, in a fixed order: Host header, TLS server name, CONNECT target.
        Usually there are none (the Host header repeats the destination)."""
        names: list[str] = []
        for name in (pretty_host(request), flow.client_conn.sni, target):
            if name and name != request.host and name != destination and name not in names:
                names.append(name)
        return names

    def _refuse_malformed(self, flow: http.HTTPFlow, state: FlowState, raw: str) -> None:
        assert state.instant is not None
        period = self.policy.current.calendar.period(state.instant)
        state.decision = Decision(Action.BLOCK, Source.CONNECTION, "An address the gateway could not read.", period,
                                  state.host or "invalid", rule="malformed-host")  # fmt: skip
        refuse(flow, 400, "The school web gateway could not read this address.")
        log.warning("refused a request with a malformed host %r from %s", raw, flow.client_conn.peername[0])


def failed_decision(period: PeriodKind, host: str) -> Decision:
    return Decision(Action.BLOCK, Source.FAILURE, FAILED_REASON, period, host, rule="gateway-failure")
