"""DNS over HTTPS by its shape, to any host: a DoH query hides every name the browser looks up from the school's
DNS and from the lists, whoever answers it.

- RFC 8484: `application/dns-message` as the body's type (POST) or what the client accepts, and GET `?dns=` with
  a base64url DNS query (read and checked: a header and at least one question);
- the conventional `/dns-query` path;
- JSON APIs (Google's `/resolve?name=&type=`, Cloudflare's `application/dns-json`).

Plain string checks: a request that is none of these costs a few `in` tests.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

DNS_MESSAGE = "application/dns-message"
DNS_JSON = "application/dns-json"
DNS_HEADER = 12


@dataclass(frozen=True, slots=True)
class DohShape:
    # The detector's name, as the incident shows it.
    detector: str
    # True when the request can be nothing but a DNS query.
    certain: bool
    evidence: str


def doh_shape(method: str, path: str, content_type: str, accept: str) -> DohShape | None:
    """What makes this request a DoH query, or None. `path` includes the query string."""
    if "dns" not in path and "resolve" not in path and "dns" not in accept and "dns" not in content_type:
        return None  # every shape below names one or the other
    if DNS_MESSAGE in content_type:
        return DohShape("doh-content-type", True, content_type)
    if DNS_MESSAGE in accept:
        return DohShape("doh-accept", True, accept)
    if DNS_JSON in accept or DNS_JSON in content_type:
        return DohShape("doh-json", True, accept or content_type)
    route, _, query = path.partition("?")
    if "dns=" in query and method == "GET":
        value = _param(query, "dns")
        if value is not None and is_dns_query(value):
            return DohShape("doh-get-query", True, f"dns={value[:64]}")
    if route.endswith("/dns-query"):
        return DohShape("doh-path", bool(query) or method == "POST", route)
    if route.endswith("/resolve") and "name=" in query:
        name = _param(query, "name")
        if name and "." in name and ("type=" in query or "ct=" in query):
            return DohShape("doh-json-resolve", True, f"{route}?{query[:120]}")
    if "ct=application/dns-json" in query:
        return DohShape("doh-json", True, query[:120])
    return None


def is_dns_query(value: str) -> bool:
    """Whether a base64url value (padding optional) is a DNS query: a 12-byte header, QR clear, one or more
    questions, and the first question's name readable."""
    try:
        wire = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return False
    if len(wire) < DNS_HEADER + 5 or wire[2] & 0x80:
        return False
    questions = int.from_bytes(wire[4:6], "big")
    if questions == 0:
        return False
    i = DNS_HEADER
    while i < len(wire):
        length = wire[i]
        if length == 0:
            return i + 5 <= len(wire)
        if length > 63:
            return False
        i += length + 1
    return False


def _param(query: str, name: str) -> str | None:
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key == name:
            return value
    return None
