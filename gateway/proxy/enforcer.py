"""Carries out the policy: decides every request from its headers, blocks with a block page, and passes the
never-intercept hosts through untouched at the TLS ClientHello."""

from __future__ import annotations

import logging

from mitmproxy import http, tls

from gateway.decisions.engine import decide
from gateway.decisions.types import Action, Decision
from gateway.identity.types import Identity
from gateway.lists.hosts import normalise_host
from gateway.proxy.clock import Clock
from gateway.proxy.identity import IDENTITY
from gateway.proxy.policy_source import PolicySource
from gateway.proxy.request_host import pretty_host
from gateway.web.blockpage import BlockNotice, render_block_page, render_block_text

log = logging.getLogger(__name__)

DECISION = "gateway.decision"
INSTANT = "gateway.instant"

# Strictest first: when the destination and the Host header disagree, the stricter decision stands.
SEVERITY = {Action.BLOCK: 0, Action.FLAG: 1, Action.ALLOW: 2}

PAGE_DESTINATIONS = {"document", "iframe", "frame", "embed", "object"}


def wants_page(request: http.Request) -> bool:
    dest = request.headers.get("sec-fetch-dest")
    if dest is not None:
        return dest in PAGE_DESTINATIONS
    return "text/html" in request.headers.get("accept", "")


class Enforcer:
    def __init__(self, policy: PolicySource, clock: Clock) -> None:
        self.policy = policy
        self.clock = clock

    def load(self, loader) -> None:
        # Connect upstream only when a request is allowed: a blocked site is never contacted, and its block page
        # shows even when the site is down or its name does not resolve.
        if "connection_strategy" in loader.master.options:
            loader.master.options.update(connection_strategy="lazy")

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        sni = data.client_hello.sni
        host = normalise_host(sni) if sni else None
        if host is None:
            return
        policy = self.policy.current
        for _, bits in policy.domains.match(host):
            if bits & policy.never_intercept_mask:
                data.ignore_connection = True
                return

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.error is not None:
            return
        policy = self.policy.current
        identity: Identity = flow.metadata.get(IDENTITY) or policy.networks.identify(flow.client_conn.peername[0])
        instant = policy.calendar.local(self.clock.now())
        request = flow.request
        # Usually one name (the Host header repeats the request's host, no SNI): then one decision.
        hosts = {request.host, pretty_host(request)}
        if flow.client_conn.sni:
            hosts.add(flow.client_conn.sni)
        decision: Decision | None = None
        for raw in hosts:
            host = normalise_host(raw)
            if host is None:
                self._refuse_malformed(flow, raw)
                return
            candidate = decide(policy, identity, host, request.path, instant)
            if decision is None or SEVERITY[candidate.action] < SEVERITY[decision.action]:
                decision = candidate
        assert decision is not None
        flow.metadata[DECISION] = decision
        flow.metadata[INSTANT] = instant
        if decision.action is Action.BLOCK:
            self._block(flow, decision, identity, instant)

    def _block(self, flow: http.HTTPFlow, decision: Decision, identity: Identity, instant) -> None:
        policy = self.policy.current.policy
        school = policy.school
        listed = policy.lists.get(decision.list) if decision.list else None
        notice = BlockNotice(
            decision=decision,
            identity=identity,
            url=flow.request.pretty_url,
            instant=instant,
            school=school.name,
            contact=school.contact,
            request_url=school.request_url,
            reference=flow.id[:8],
            list_description=listed.description if listed else "",
        )
        if wants_page(flow.request):
            body, content_type = render_block_page(notice), "text/html; charset=utf-8"
        else:
            body, content_type = render_block_text(notice), "text/plain; charset=utf-8"
        flow.response = http.Response.make(
            403,
            body,
            {
                "Content-Type": content_type,
                "Cache-Control": "no-store",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )
        log.info(
            "blocked %s for %s (%s): rule=%s list=%s period=%s ref=%s",
            decision.host,
            identity.client_ip,
            identity.group,
            decision.rule,
            decision.list,
            decision.period,
            notice.reference,
        )

    def _refuse_malformed(self, flow: http.HTTPFlow, raw: str) -> None:
        flow.response = http.Response.make(
            400, "The school web gateway could not read this address.\n", {"Content-Type": "text/plain; charset=utf-8"}
        )
        log.warning("refused a request with a malformed host %r from %s", raw, flow.client_conn.peername[0])
