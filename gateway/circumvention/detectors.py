"""The detectors, each named, each returning the `Detection` it saw (with its evidence) or None. Pure: the proxy's
`CircumventionGuard` hands them what a request or connection carried and blocks on what they return.

Whether a bare address is allowed is the caller's to say (`allowed(address, port)`): the policy's
`ip_literal.allowed`, and the gateway's own portal and the internal services the school lets clients reach.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gateway.circumvention.addresses import IPAddress, literal_address
from gateway.circumvention.doh import doh_shape
from gateway.circumvention.fronting import fronted
from gateway.circumvention.incident import Confidence, Detection, Technique
from gateway.circumvention.rules import CircumventionRules
from gateway.circumvention.tunnel_bytes import escaped, looks_like
from gateway.lists.hosts import is_ip_literal

Allowed = Callable[[IPAddress, int], bool]

# What the block page says. It names no technique: a block page must not teach a pupil which trick was seen.
REASON = ("This looks like a way round the school's web filter, so it is blocked. Attempts to get round the filter "
          "are recorded and passed to the headteacher.")  # fmt: skip
USER_AGENT_EVIDENCE = 300


def request_detection(rules: CircumventionRules, *, group: str, method: str, url: str | None, asked: Sequence[str],
                      port: int, path: str, content_type: str, accept: str, user_agent: str, sni: str | None,
                      host: str, host_header: str | None, allowed: Allowed) -> Detection | None:  # fmt: skip
    """A plain or intercepted request: DoH by shape, a VPN client's User-Agent, a bare address the person may not
    use (`asked`: the names the client gave, raw), a TLS name for another site than the Host header (`host_header`,
    normalised). `host` is the destination decided on; `url` may be left for the caller to add."""
    agent = user_agent[:USER_AGENT_EVIDENCE] or None
    shape = doh_shape(method, path, content_type, accept)
    if shape is not None:
        return Detection(Technique.DOH, shape.detector, Confidence.HIGH if shape.certain else Confidence.MEDIUM,
                         host=host, sni=sni, url=url, user_agent=agent, extra={"evidence": shape.evidence[:200]})  # fmt: skip
    fragment = rules.user_agents.match(user_agent)
    if fragment is not None:
        return Detection(Technique.VPN_CLIENT, "vpn-user-agent", Confidence.HIGH, host=host, sni=sni, url=url,
                         user_agent=agent, extra={"fragment": fragment})  # fmt: skip
    if rules.bars_addresses(group):
        for raw in asked:
            found = address_detection(raw, port, allowed, "http-address")
            if found is not None:
                return Detection(Technique.IP_LITERAL, found[0], found[1], host=host, sni=sni, url=url,
                                 user_agent=agent, extra=found[2])  # fmt: skip
    if sni is not None and fronted(sni, host_header):
        return Detection(Technique.DOMAIN_FRONTING, "sni-host-mismatch", Confidence.MEDIUM, host=host, sni=sni,
                         url=url, user_agent=agent)  # fmt: skip
    return None


def address_detection(raw: str, port: int, allowed: Allowed, detector: str) -> tuple[str, Confidence, dict] | None:
    """(detector, confidence, evidence) for a host written as a bare address that is not allowed, else None."""
    literal = literal_address(raw)
    if literal is None or allowed(literal.address, port):
        return None
    confidence = Confidence.HIGH if literal.obfuscated else Confidence.MEDIUM
    return detector, confidence, {"written": raw[:100], "address": str(literal.address), "form": literal.form}


def connect_detection(rules: CircumventionRules, *, group: str, target: str, port: int,
                      allowed: Allowed) -> Detection | None:  # fmt: skip
    """CONNECT to a bare address the person may not use."""
    if not rules.bars_addresses(group):
        return None
    found = address_detection(target, port, allowed, "connect-address")
    if found is None:
        return None
    return Detection(Technique.IP_LITERAL, found[0], found[1], host=found[2]["address"], extra=found[2])


def hello_detection(rules: CircumventionRules, *, group: str, target: str | None, port: int, sni: str | None,
                    allowed: Allowed) -> Detection | None:  # fmt: skip
    """A TLS ClientHello: no server name (the site hidden from the filter), an address as the server name, or a
    server name for another site than the CONNECT target. `target` is normalised; with no name the client asked
    for (transparent or SOCKS by address) it is the address it connects to."""
    if target is None:
        return None
    if sni is None:
        if not is_ip_literal(target):
            return Detection(Technique.NO_SNI, "tls-no-sni", Confidence.MEDIUM, host=target, extra={"port": port})
        # TLS to an address never carries a name: the address itself is what the policy decides.
        if rules.bars_addresses(group):
            found = address_detection(target, port, allowed, "tls-no-sni-address")
            if found is not None:
                return Detection(Technique.NO_SNI, found[0], found[1], host=target, extra=found[2])
        return None
    if is_ip_literal(sni):
        if rules.bars_addresses(group):
            found = address_detection(sni, port, allowed, "tls-sni-address")
            if found is not None:
                return Detection(Technique.IP_LITERAL, found[0], found[1], host=target, sni=sni, extra=found[2])
        return None
    if fronted(sni, target):
        return Detection(Technique.DOMAIN_FRONTING, "connect-sni-mismatch", Confidence.MEDIUM, host=target, sni=sni)
    return None


def tunnel_detection(*, target: str | None, sni: str | None, port: int | None, data: bytes) -> Detection:
    """Bytes that are neither TLS nor HTTP where the gateway only carries web traffic (SSH, OpenVPN, SOCKS)."""
    return Detection(Technique.NON_TLS_TUNNEL, "tunnel-not-tls", Confidence.HIGH, host=target, sni=sni,
                     first_bytes=escaped(data), extra={"looks_like": looks_like(data), "port": port})  # fmt: skip


def workaround_detection(rules: CircumventionRules, *, listed: str | None, host: str, url: str | None,
                         user_agent: str, sni: str | None = None) -> Detection | None:  # fmt: skip
    """A block on a list of workaround services (VPNs, web proxies, redirectors, remote control, DoH resolvers)."""
    if listed is None or listed not in rules.workaround_lists:
        return None
    return Detection(Technique.WORKAROUND_SITE, "workaround-list", Confidence.MEDIUM, host=host, sni=sni, url=url,
                     user_agent=user_agent[:USER_AGENT_EVIDENCE] or None, extra={"list": listed})  # fmt: skip


def burst_detection(rules: CircumventionRules, last: Detection, sites: list[str]) -> Detection:
    """The attempt that completed a burst: it stands for the burst, naming the sites tried."""
    burst = rules.settings.burst
    return Detection(Technique.BURST, "burst", Confidence.HIGH, host=last.host, sni=last.sni, url=last.url,
                     user_agent=last.user_agent, first_bytes=last.first_bytes,
                     extra={"sites": sites[:50], "attempts": len(sites), "minutes": burst.minutes,
                            "last": last.technique.value, "last_detector": last.detector})  # fmt: skip
