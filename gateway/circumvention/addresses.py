"""Hosts that are a bare IP address, in every spelling a pupil tries: dotted, decimal (`http://1572395042/`),
hex (`0x5db8d822`), octal (`0135.0270.0330.042`), short (`93.11065378`), IPv6 in brackets and IPv4-mapped IPv6
(`[::ffff:93.184.216.34]`). Each is read as the address a browser would connect to, so the spelling cannot hide it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from gateway.lists.hosts import is_ip_literal, normalise_host

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Literal:
    address: IPAddress
    # How it was written: dotted, decimal, hex, octal, short, ipv6, ipv4-mapped.
    form: str

    @property
    def obfuscated(self) -> bool:
        """Spelled in a form nobody types by accident."""
        return self.form not in ("dotted", "ipv6")


def literal_address(raw: str) -> Literal | None:
    """The address a host (as the client wrote it, port allowed) names, or None when it is a name."""
    if not raw or _plainly_a_name(raw):
        return None
    host = normalise_host(raw)
    if host is None or not is_ip_literal(host):
        return None
    address = ipaddress.ip_address(host)
    if address.version == 6:
        mapped = address.ipv4_mapped
        if mapped is not None:
            return Literal(mapped, "ipv4-mapped")
        return Literal(address, "ipv6")
    return Literal(address, _ipv4_form(raw))


def _plainly_a_name(raw: str) -> bool:
    """A quick answer for the usual host: its last label neither ends in a digit nor starts with 0x, which a
    browser reads as a name, never a number (so no parse is needed)."""
    if raw[0] == "[" or raw.count(":") > 1:
        return False
    host = raw.partition(":")[0]
    last = host[host.rfind(".", 0, len(host) - 1) + 1 :].rstrip(".")
    return bool(last) and not last[-1].isdigit() and last[:2].lower() != "0x"


def _ipv4_form(raw: str) -> str:
    text = raw.lower()
    if text.startswith("["):
        return "ipv6"
    # Drop a port, and the root's dot.
    text = text.partition(":")[0].rstrip(".")
    parts = text.split(".")
    if any(p.startswith("0x") for p in parts):
        return "hex"
    if any(len(p) > 1 and p.startswith("0") for p in parts):
        return "octal"
    if len(parts) == 1:
        return "decimal"
    if len(parts) < 4:
        return "short"
    return "dotted"
