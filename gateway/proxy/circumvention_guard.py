"""Blocks and records attempts to get round the filter (`gateway.circumvention.detectors` says what they are).

- Requests, after the enforcer: DoH by shape to any host, VPN client user agents, bare addresses the person may
  not use, a Host header for another site than the TLS name, and blocks on the workaround lists.
- Connections, called by `TunnelGuard` where it decides them: CONNECT to a bare address, a ClientHello without a
  name (or with an address, or another site's name), bytes that are not TLS.

A detection blocks the attempt (the block page where one can be shown) and is put on the flow's or connection's
state, where the access log finds it. Each person's detections also feed the burst counter. Self-test requests
are decided as usual but never recorded as attempts.

`BrowserSwitches` answers the names browsers ask before they turn on their own encrypted DNS or Apple's Private
Relay, in mitmproxy's DNS mode, so that they stay off.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from mitmproxy import dns, http

from gateway.circumvention.addresses import IPAddress
from gateway.circumvention.burst import BurstCounter
from gateway.circumvention.detectors import (
    REASON,
    burst_detection,
    connect_detection,
    hello_detection,
    request_detection,
    tunnel_detection,
    workaround_detection,
)
from gateway.circumvention.incident import Detection
from gateway.circumvention.rules import CircumventionRules
from gateway.circumvention.sites import site_of
from gateway.decisions.types import Action, Decision, Source
from gateway.identity.types import Identity, IdentitySource
from gateway.lists.hosts import normalise_host
from gateway.policy.circumvention_model import Burst
from gateway.proxy.block_response import block
from gateway.proxy.destination_guard import DestinationGuard
from gateway.proxy.flow_state import Connections, ConnectionState, flow_state
from gateway.proxy.policy_source import PolicySource

log = logging.getLogger(__name__)

# Proxy modes in which a connection arrives with its destination (as `tunnels.DESTINATION_KNOWN`): the address
# it goes to is not one the client asked for by name.
DESTINATION_KNOWN = frozenset({"transparent", "socks5", "wireguard", "local"})


class CircumventionGuard:
    def __init__(self, policy: PolicySource, guard: DestinationGuard, connections: Connections) -> None:
        self.policy = policy
        self.guard = guard
        self.connections = connections
        self._burst: BurstCounter | None = None
        self._burst_for: Burst | None = None

    def rules(self) -> CircumventionRules | None:
        rules = self.policy.current.circumvention
        return rules if rules is not None and rules.enabled else None

    # -- requests --------------------------------------------------------------------------------------------
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        state = flow_state(flow)
        decision, identity = state.decision, state.identity
        if decision is None or identity is None or state.detection is not None or _not_a_person(identity):
            return  # the gateway's own pages, or a self-test
        rules = self.rules()
        if rules is None:
            return
        tunnel = self.connections.get(flow.client_conn.id)
        if tunnel is not None and (tunnel.detection is not None or tunnel.failed):
            return  # the connection carries the attempt already
        request = flow.request
        host_header = request.host_header
        asked = [host_header] if host_header else []
        if tunnel is None and flow.client_conn.proxy_mode.type_name not in DESTINATION_KNOWN:
            asked.append(request.host)
        headers = request.headers
        user_agent = headers.get("user-agent", "")
        host = state.host or request.host
        sni = normalise_host(flow.client_conn.sni) if flow.client_conn.sni else None
        detection = request_detection(
            rules, group=identity.group, method=request.method, url=None, asked=asked, port=request.port,
            path=request.path, content_type=headers.get("content-type", ""), accept=headers.get("accept", ""),
            user_agent=user_agent, sni=sni, host=host,
            host_header=normalise_host(host_header) if host_header else None, allowed=self._allowed,
        )  # fmt: skip
        if detection is None and decision.blocked:
            detection = workaround_detection(rules, listed=decision.list, host=host, url=None, user_agent=user_agent,
                                             sni=sni)  # fmt: skip
        if detection is None:
            return
        # The URL is assembled only for an attempt: most requests never need it.
        detection = replace(detection, url=request.pretty_url)
        state.detection = self._counted(rules, identity, detection)
        if not decision.blocked:
            assert state.instant is not None
            state.decision = _blocking(decision, state.detection)
            block(flow, self.policy.current.policy, state.decision, identity, state.instant, self.guard.request_form)
        log.warning("circumvention: %s (%s) by %s to %s", detection.technique, detection.detector,
                    identity.username or identity.client_ip, host)  # fmt: skip

    # -- connections (called by TunnelGuard) ------------------------------------------------------------------
    def on_connect(self, tunnel: ConnectionState, raw_target: str, *, by_name: bool = True) -> None:
        """A connection's target, once TunnelGuard has decided it: a CONNECT (`by_name`), or the destination a
        transparent or SOCKS connection came with, which is an address the client did not necessarily ask for."""
        rules = self._rules_for(tunnel)
        if rules is None or tunnel.port is None:
            return
        detection = None
        if by_name:
            detection = connect_detection(rules, group=tunnel.identity.group, target=raw_target, port=tunnel.port,
                                          allowed=self._allowed)  # fmt: skip
        if detection is None:
            detection = self._workaround(rules, tunnel)
        self._apply(rules, tunnel, detection)

    def on_hello(self, tunnel: ConnectionState, sni: str | None) -> bool:
        """A TLS ClientHello in a tunnel, once TunnelGuard has decided its name; True when it is an attempt that
        TunnelGuard must now record."""
        rules = self._rules_for(tunnel)
        if rules is None or tunnel.port is None:
            return False
        detection = hello_detection(rules, group=tunnel.identity.group, target=tunnel.target, port=tunnel.port,
                                    sni=sni, allowed=self._allowed)  # fmt: skip
        return self._apply(rules, tunnel, detection or self._workaround(rules, tunnel))

    def on_raw(self, tunnel: ConnectionState, data: bytes) -> None:
        """Bytes that are neither TLS nor HTTP, which TunnelGuard is refusing."""
        rules = self._rules_for(tunnel)
        if rules is None:
            return
        self._apply(rules, tunnel, tunnel_detection(target=tunnel.target, sni=tunnel.sni, port=tunnel.port, data=data))

    @staticmethod
    def _workaround(rules: CircumventionRules, tunnel: ConnectionState) -> Detection | None:
        decision = tunnel.decision
        if decision is None or not decision.blocked:
            return None
        return workaround_detection(rules, listed=decision.list, host=tunnel.target or decision.host, url=None,
                                    user_agent="", sni=tunnel.sni)  # fmt: skip

    def _rules_for(self, tunnel: ConnectionState) -> CircumventionRules | None:
        if tunnel.detection is not None or tunnel.failed or _not_a_person(tunnel.identity):
            return None
        return self.rules()

    def _apply(self, rules: CircumventionRules, tunnel: ConnectionState, detection: Detection | None) -> bool:
        if detection is None:
            return False
        tunnel.detection = self._counted(rules, tunnel.identity, detection)
        if tunnel.decision is None or not tunnel.decision.blocked:
            period = self.policy.current.calendar.period(tunnel.instant)
            tunnel.decision = Decision(Action.BLOCK, Source.CIRCUMVENTION, REASON, period,
                                       tunnel.target or detection.host or "unknown", rule=detection.detector)  # fmt: skip
        log.warning("circumvention: %s (%s) by %s to %s", detection.technique, detection.detector,
                    tunnel.identity.username or tunnel.identity.client_ip, tunnel.target)  # fmt: skip
        return True

    # -- shared ----------------------------------------------------------------------------------------------
    def _allowed(self, address: IPAddress, port: int) -> bool:
        """A bare address anyone may use: the policy's, the gateway's portal, the internal services it reaches."""
        rules = self.policy.current.circumvention
        if rules is not None and rules.allows_address(address):
            return True
        if self.guard.is_portal(str(address), port):
            return True
        return any(r.admits(address, port) for r in self.guard.internal().reachable)

    def _counted(self, rules: CircumventionRules, identity: Identity, detection: Detection) -> Detection:
        """The detection, or the burst it completes."""
        settings = rules.settings.burst
        if self._burst is None or self._burst_for != settings:
            self._burst, self._burst_for = BurstCounter(settings.attempts, settings.minutes * 60.0), settings
        person = identity.username or identity.client_ip or "unknown"
        sites = self._burst.add(person, site_of(detection.host or "unknown"), time.monotonic())
        return detection if sites is None else burst_detection(rules, detection, sites)


class BrowserSwitches:
    """In mitmproxy's DNS mode, the canary names answer "no such name": Firefox then keeps its DNS over HTTPS off
    (`use-application-dns.net`), and Apple devices keep iCloud Private Relay off (`mask.icloud.com`,
    `mask-h2.icloud.com`)."""

    CANARIES = frozenset({"use-application-dns.net", "mask.icloud.com", "mask-h2.icloud.com"})

    def dns_request(self, flow: dns.DNSFlow) -> None:
        question = flow.request.question
        if question is None or flow.response is not None:
            return
        if question.name.lower().rstrip(".") in self.CANARIES:
            flow.response = flow.request.fail(dns.response_codes.NXDOMAIN)


def _blocking(decision: Decision, detection: Detection) -> Decision:
    return Decision(Action.BLOCK, Source.CIRCUMVENTION, REASON, decision.period, decision.host, rule=detection.detector)


def _not_a_person(identity: Identity) -> bool:
    return identity.source is IdentitySource.SELFTEST
