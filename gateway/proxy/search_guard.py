"""Scores the search in an allowed request (Google, Bing, YouTube …) against the policy's term lists: a search over
the block threshold gets the block page naming its category, one over the flag threshold goes through and is
reported with its terms. Place after the enforcer: only requests it allowed are scored.

A search box that posts its form (DuckDuckGo's HTML and lite pages do) carries the terms in the body: those are
scored once the body has arrived, before anything is sent on."""

from __future__ import annotations

from mitmproxy import http

from gateway.content.search_terms import search_terms
from gateway.proxy.block_response import block
from gateway.proxy.content_guard import settle
from gateway.proxy.destination_guard import DestinationGuard
from gateway.proxy.flow_state import flow_state
from gateway.proxy.identity import identity_of
from gateway.proxy.policy_source import PolicySource

FORM = "application/x-www-form-urlencoded"
# A search form is a few words; a longer body is read this far, so padding it does not hide the terms.
MAX_FORM_BYTES = 16 * 1024


class SearchGuard:
    def __init__(self, policy: PolicySource, guard: DestinationGuard) -> None:
        self.policy = policy
        self.guard = guard

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        path, _, query = flow.request.path.partition("?")
        self._score(flow, query, path)

    def request(self, flow: http.HTTPFlow) -> None:
        request = flow.request
        if request.method != "POST" or not request.headers.get("content-type", "").lower().startswith(FORM):
            return
        body = (request.raw_content or b"")[:MAX_FORM_BYTES]
        self._score(flow, body.decode("utf-8", "replace"), request.path.partition("?")[0])

    def _score(self, flow: http.HTTPFlow, query: str, path: str) -> None:
        state = flow_state(flow)
        if flow.response is not None or state.decision is None or state.decision.blocked:
            return
        compiled = self.policy.current
        if compiled.content is None:
            return
        terms = search_terms(state.host or flow.request.host, query, path)
        if terms is None:
            return
        identity = identity_of(flow, self.policy)
        decision = settle(state, compiled.content.analyse_search(terms, identity))
        if decision is not None and decision.blocked:
            assert state.instant is not None
            block(flow, compiled.policy, decision, identity, state.instant, self.guard.request_form)
