"""Scores the search in an allowed request (Google, Bing, YouTube …) against the policy's term lists: a search over
the block threshold gets the block page naming its category, one over the flag threshold goes through and is
reported with its terms. Place after the enforcer: only requests it allowed are scored."""

from __future__ import annotations

from mitmproxy import http

from gateway.content.search_terms import search_terms
from gateway.proxy.block_response import block
from gateway.proxy.content_guard import settle
from gateway.proxy.destination_guard import DestinationGuard
from gateway.proxy.flow_state import flow_state
from gateway.proxy.identity import identity_of
from gateway.proxy.policy_source import PolicySource


class SearchGuard:
    def __init__(self, policy: PolicySource, guard: DestinationGuard) -> None:
        self.policy = policy
        self.guard = guard

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        state = flow_state(flow)
        if flow.response is not None or state.decision is None or state.decision.blocked:
            return
        compiled = self.policy.current
        if compiled.content is None:
            return
        path, _, query = flow.request.path.partition("?")
        terms = search_terms(state.host or flow.request.host, query, path)
        if terms is None:
            return
        identity = identity_of(flow, self.policy)
        decision = settle(state, compiled.content.analyse_search(terms, identity))
        if decision is not None and decision.blocked:
            assert state.instant is not None
            block(flow, compiled.policy, decision, identity, state.instant, self.guard.request_form)
