"""What a detector reports: the technique, how sure it is, and the evidence it saw.

A detection travels on the access-log row of the attempt it blocked (the row's `incident` key, no column), so the
writer records it in the transaction that writes the row, and a database outage spools it with the row.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Technique(enum.StrEnum):
    WORKAROUND_SITE = "workaround_site"  # a listed VPN, proxy, redirector, remote-control or DoH service
    DOH = "doh"  # DNS over HTTPS by protocol, to any host
    IP_LITERAL = "ip_literal"  # HTTP, CONNECT or TLS to a bare address
    NO_SNI = "no_sni"  # TLS without a server name
    NON_TLS_TUNNEL = "non_tls_tunnel"  # bytes that are not TLS on a TLS port
    DOMAIN_FRONTING = "domain_fronting"  # SNI and Host header disagree
    VPN_CLIENT = "vpn_client"  # a VPN or anonymiser client's user agent
    BURST = "burst"  # many blocked attempts across proxy or mirror sites in a short time


class Confidence(enum.StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class Detection:
    technique: Technique
    # The detector's name, as the incident page shows it ("doh-content-type", "tls-no-sni", ...).
    detector: str
    confidence: Confidence
    host: str | None = None
    sni: str | None = None
    url: str | None = None
    user_agent: str | None = None
    first_bytes: str | None = None
    # Anything else the detector saw, JSON-serialisable.
    extra: dict[str, Any] = field(default_factory=dict)

    def as_row_value(self) -> dict[str, Any]:
        """The access-log row's `incident` value: plain JSON-serialisable data, as the spool keeps it."""
        return {
            "technique": self.technique.value,
            "detector": self.detector,
            "confidence": self.confidence.value,
            "host": self.host,
            "sni": self.sni,
            "url": self.url,
            "user_agent": self.user_agent,
            "first_bytes": self.first_bytes,
            "extra": self.extra,
        }
