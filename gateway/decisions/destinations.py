"""Which destinations are inside the school or the gateway itself, and so never reached through the proxy.

Pure: the proxy adapter asks with a normalised host before it connects, and with the address a name resolved to
just before it opens the connection, so no spelling of an address (`127.1`, `0x7f.1`, `2130706433`,
`[::ffff:127.0.0.1]`) and no name that resolves inside gets through.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.lists.hosts import is_ip_literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 forms that carry an IPv4 address a host will connect to: NAT64 and the deprecated IPv4-compatible form.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
# Shared address space (carrier-grade NAT) is not "private" to ipaddress, but is never a public web site.
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")


class BadReachable(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Reachable:
    """An internal service clients may reach: a network and, optionally, one port."""

    network: IPNetwork
    port: int | None = None

    def admits(self, ip: IPAddress, port: int) -> bool:
        return ip in self.network and (self.port is None or self.port == port)


def parse_reachable(entry: str) -> Reachable:
    """`10.20.0.5`, `10.20.0.5:443`, `10.20.0.0/24:80`, `[fd00::1]:443`, `fd00::/8`."""
    text = entry.strip()
    port: int | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise BadReachable(f"{entry!r}: unclosed '['")
        rest, text = text[end + 1 :], text[1:end]
        if rest:
            port = _port(entry, rest.removeprefix(":")) if rest.startswith(":") else _fail(entry)
    elif text.count(":") == 1:
        text, _, raw_port = text.partition(":")
        port = _port(entry, raw_port)
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise BadReachable(f"{entry!r}: {exc}") from None
    return Reachable(network, port)


def _port(entry: str, raw: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise BadReachable(f"{entry!r}: not a port: {raw!r}")
    return int(raw)


def _fail(entry: str) -> int:
    raise BadReachable(f"{entry!r}: expected [address]:port")


def ipv4_inside(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, compatible), else the address itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64 or (ip in _COMPATIBLE and int(ip) > 1):
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def is_local_name(host: str) -> bool:
    """Names every resolver answers with this machine: `localhost` and its subdomains (RFC 6761)."""
    return host == "localhost" or host.endswith(".localhost") or host in ("localhost.localdomain", "ip6-localhost")


class InternalAddresses:
    """Loopback, link-local, private, multicast and reserved ranges, and the networks the policy names, less the
    services it lets clients reach."""

    def __init__(self, networks: Iterable[IPNetwork] = (), reachable: Iterable[Reachable] = ()) -> None:
        self.networks = tuple(networks)
        self.reachable = tuple(reachable)

    def is_internal(self, ip: IPAddress) -> bool:
        ip = ipv4_inside(ip)
        return (
            ip.is_private
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_unspecified
            or ip.is_reserved
            or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED)
            or any(ip in network for network in self.networks)
        )

    def refuses(self, ip: IPAddress, port: int) -> bool:
        if not self.is_internal(ip):
            return False
        inner = ipv4_inside(ip)
        return not any(r.admits(ip, port) or r.admits(inner, port) for r in self.reachable)

    def refuses_host(self, host: str, port: int) -> bool:
        """For a normalised host before any lookup: an internal IP literal, or a name for this machine."""
        if is_ip_literal(host):
            return self.refuses(ipaddress.ip_address(host), port)
        return is_local_name(host)
