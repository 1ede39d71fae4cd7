"""The nftables ruleset that makes a Linux gateway filter its WiFi VLANs transparently (pure: text out).

Web traffic (TCP 80 and 443) from the policy's client subnets is redirected to the proxy's transparent port, so a
device with no proxy settings is filtered and known by its own address (no SNAT before the proxy). QUIC (UDP 443)
is dropped so browsers fall back to TCP, where the gateway sees them. The gateway's own traffic (output chain) and
traffic to the gateway itself (console, portal, DNS) are left alone.

Egress: fail-closed (pupil) subnets may send nothing else through the gateway but the ports the operator allows
(NTP by default) and DNS to the resolvers named: a VPN (OpenVPN, WireGuard, IPsec), DNS over TLS, Tor, SSH or a
proxy on another port would carry the web past the filter. Replies to what was allowed come back by conntrack.

Fail closed or open: the subnets of fail-closed groups are redirected unconditionally, and their forwarded 80/443 is
dropped, so with the proxy down pupils get a refused connection, never the open internet. Fail-open subnets are
redirected only while their set is filled; the proxy's systemd unit loads this file when it starts and empties the
set when it stops, so staff and guests are routed around a stopped proxy.

Workers (`gateway run --workers N`): the redirect spreads clients over the workers' ports (the proxy port and the
N-1 after it) by a hash of the source address (`jhash ... mod N`), so a device always reaches the same worker.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateway.policy.model import Policy

TABLE = "school_gateway"
WEB_PORTS = "{ 80, 443 }"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class DeployError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ClientNetwork:
    name: str
    group: str
    subnets: tuple[IPNetwork, ...]


@dataclass(frozen=True, slots=True)
class Transparent:
    """Where the proxy listens and which clients go to it."""

    networks: tuple[ClientNetwork, ...]
    fail_closed_groups: frozenset[str]
    proxy_port: int = 8080
    interfaces: tuple[str, ...] = ()
    # What else fail-closed subnets may send through the gateway ("udp/123"), and the DNS servers they may ask;
    # None: everything (no egress restriction).
    egress: tuple[tuple[str, int], ...] | None = (("udp", 123),)
    dns_servers: tuple[IPNetwork, ...] = ()
    # Proxy workers listening on proxy_port, proxy_port + 1, ...
    workers: int = 1

    def subnets(self, fail_closed: bool, version: int) -> list[IPNetwork]:
        found = {
            subnet
            for network in self.networks
            if (network.group in self.fail_closed_groups) == fail_closed
            for subnet in network.subnets
            if subnet.version == version
        }
        return sorted(found, key=lambda n: (int(n.network_address), n.prefixlen))


def client_networks(policy: Policy) -> tuple[ClientNetwork, ...]:
    """The policy's networks as clients of a gateway: loopback and link-local subnets never arrive from a VLAN."""
    networks = []
    for network in policy.networks:
        subnets = tuple(s for s in network.subnets if not (s.is_loopback or s.is_link_local))
        if subnets:
            networks.append(ClientNetwork(network.name, network.group, subnets))
    return tuple(networks)


def transparent(policy: Policy, *, proxy_port: int, fail_closed: Sequence[str], interfaces: Sequence[str],
                networks: Sequence[str] = (), egress: Sequence[str] | None = ("udp/123",),
                dns_servers: Sequence[str] = (), workers: int = 1) -> Transparent:  # fmt: skip
    """Check the operator's choices against the policy; `fail_closed` names groups, or is `["all"]`; `egress` is
    "PROTO/PORT" items, or None for no egress restriction."""
    if not 0 < proxy_port < 65536:
        raise DeployError(f"proxy port {proxy_port} is not a port")
    if workers < 1 or proxy_port + workers - 1 > 65535:
        raise DeployError(f"{workers} workers from port {proxy_port} do not fit in the ports (1-65535)")
    allowed = None if egress is None else tuple(_proto_port(item) for item in egress)
    try:
        resolvers = tuple(ipaddress.ip_network(server) for server in dns_servers)
    except ValueError as exc:
        raise DeployError(f"DNS server: {exc}") from None
    for name in interfaces:
        # nftables quotes the name; one that needs escaping is not an interface name Linux allows anyway.
        if not name or len(name) > 15 or any(c in name for c in "\"\\/ \t\n"):
            raise DeployError(f"{name!r} is not a network interface name")
    groups = set(policy.groups)
    chosen = groups if list(fail_closed) == ["all"] else set(fail_closed)
    unknown = sorted(chosen - groups)
    if unknown:
        raise DeployError(f"no group {', '.join(unknown)} in the policy (its groups: {', '.join(sorted(groups))})")
    found = client_networks(policy)
    if networks:
        names = {n.name for n in found}
        missing = sorted(set(networks) - names)
        if missing:
            raise DeployError(f"no client network {', '.join(missing)} in the policy "
                              f"(its networks: {', '.join(sorted(names))})")  # fmt: skip
        found = tuple(n for n in found if n.name in networks)
    if not found:
        raise DeployError("the policy names no client subnets (networks:) to redirect")
    return Transparent(found, frozenset(chosen), proxy_port, tuple(interfaces), allowed, resolvers, workers)


def _proto_port(item: str) -> tuple[str, int]:
    proto, _, port = item.partition("/")
    if proto not in ("tcp", "udp") or not port.isdigit() or not 0 < int(port) < 65536:
        raise DeployError(f"{item!r} is not PROTO/PORT (tcp/… or udp/…, a port 1-65535)")
    if int(port) in (80, 443):
        raise DeployError(f"{item!r}: web ports are the proxy's, not an exception to open")
    return proto, int(port)


def ruleset(setup: Transparent) -> str:
    """The whole ruleset for `nft -f`, replacing any earlier one of this table atomically."""
    lines = [
        "#!/usr/sbin/nft -f",
        "# School web gateway: transparent filtering of the WiFi VLANs (written by `gateway deploy nftables`).",
        *_network_comments(setup),
        "",
        "# Declaring the table, then deleting it, makes loading this file again replace the old rules in one step.",
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        "",
        f"table inet {TABLE} {{",
    ]
    for fail_closed, label in ((True, "fail_closed"), (False, "fail_open")):
        for version, kind in ((4, "ipv4_addr"), (6, "ipv6_addr")):
            lines += _set(f"{label}_v{version}", kind, setup.subnets(fail_closed, version))
    if setup.interfaces:
        lines += [
            "\t# Only traffic arriving on the school's WiFi VLANs is treated as a client's.",
            "\tset wifi_interfaces {",
            "\t\ttype ifname",
            f"\t\telements = {{ {', '.join(_quoted(i) for i in setup.interfaces)} }}",
            "\t}",
            "",
        ]
    wifi = "iifname @wifi_interfaces " if setup.interfaces else ""
    lines += [
        "\tchain prerouting {",
        "\t\ttype nat hook prerouting priority dstnat; policy accept;",
        "\t\t# Traffic to the gateway itself (console, sign-in portal, DNS, SSH) is not the web: never redirected.",
        "\t\tfib daddr type local accept",
        "\t\t# Pupils' web traffic always goes to the proxy; with the proxy down the connection is refused (fail",
        "\t\t# closed). The source address is kept: the proxy knows the device, and so its group, by it.",
        *_workers_comment(setup),
        *(f"\t\t{wifi}{family} saddr @fail_closed_v{v} tcp dport {WEB_PORTS} redirect to :{_port(setup, family)}"
          for v, family in ((4, "ip"), (6, "ip6"))),
        "\t\t# Other networks go to the proxy while their set is filled: the proxy's unit loads this file when it",
        f"\t\t# starts and runs `nft flush set inet {TABLE} fail_open_v4` (and _v6) when it stops.",
        *(f"\t\t{wifi}{family} saddr @fail_open_v{v} tcp dport {WEB_PORTS} redirect to :{_port(setup, family)}"
          for v, family in ((4, "ip"), (6, "ip6"))),
        "\t}",
        "",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        "\t\t# QUIC (HTTP/3 over UDP 443) would pass the proxy by; dropped, browsers fall back to TCP 443.",
        *(f"\t\t{wifi}{family} saddr @{label}_v{v} udp dport 443 drop"
          for label in ("fail_closed", "fail_open") for v, family in ((4, "ip"), (6, "ip6"))),
        "\t\t# Pupils' web traffic reaches this chain only if it escaped the redirect (the rule removed, a half-",
        "\t\t# loaded table): it is dropped, never routed around the filter.",
        *(f"\t\t{wifi}{family} saddr @fail_closed_v{v} tcp dport {WEB_PORTS} drop" for v, family in ((4, "ip"), (6, "ip6"))),
        *_egress(setup, wifi),
        "\t}",
        "",
        "\t# No output chain: the gateway's own connections (the proxy's upstream ones among them) are left alone.",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _port(setup: Transparent, family: str) -> str:
    """The redirect's port: the proxy's, or with workers one of theirs chosen by a hash of the source address."""
    if setup.workers == 1:
        return str(setup.proxy_port)
    ports = ", ".join(f"{n} : {setup.proxy_port + n}" for n in range(setup.workers))
    return f"jhash {family} saddr mod {setup.workers} map {{ {ports} }}"


def _workers_comment(setup: Transparent) -> list[str]:
    if setup.workers == 1:
        return []
    return [
        f"\t\t# {setup.workers} proxy workers: a hash of the source address picks one, so a device stays on its",
        "\t\t# worker (and keeps its identity cache and limits there). A stopped worker's devices are refused until",
        "\t\t# `gateway run` has restarted it, a second or so.",
    ]


def _egress(setup: Transparent, wifi: str) -> list[str]:
    """Fail-closed subnets: replies, the allowed ports and DNS to the named resolvers; everything else dropped."""
    if setup.egress is None:
        return []
    lines = [
        "\t\t# Anything else pupils send through the gateway is dropped: a VPN (OpenVPN, WireGuard, IPsec), DNS over",
        "\t\t# TLS, Tor, SSH or a proxy on another port would carry the web past the filter. Replies to what is",
        "\t\t# allowed come back by connection tracking.",
        "\t\tct state established,related accept",
    ]
    for v, family in ((4, "ip"), (6, "ip6")):
        source = f"{wifi}{family} saddr @fail_closed_v{v}"
        resolvers = [str(s) for s in setup.dns_servers if s.version == v]
        if resolvers:
            lines += [f"\t\t{source} {family} daddr {{ {', '.join(resolvers)} }} {proto} dport 53 accept"
                      for proto in ("udp", "tcp")]  # fmt: skip
        for proto in ("tcp", "udp"):
            ports = sorted(port for p, port in setup.egress if p == proto)
            if ports:
                lines.append(f"\t\t{source} {proto} dport {{ {', '.join(map(str, ports))} }} accept")
        lines.append(f"\t\t{source} drop")
    return lines


def flush_fail_open() -> list[list[str]]:
    """The nft commands that route fail-open networks around a stopped proxy."""
    return [["flush", "set", "inet", TABLE, f"fail_open_v{v}"] for v in (4, 6)]


def _network_comments(setup: Transparent) -> list[str]:
    last = setup.proxy_port + setup.workers - 1
    ports = f"ports: {setup.proxy_port}-{last} ({setup.workers} workers)" if setup.workers > 1 else f"port: {last}"
    lines = [f"# Proxy's transparent {ports}."]
    for network in setup.networks:
        closed = "fail closed" if network.group in setup.fail_closed_groups else "fail open"
        subnets = ", ".join(map(str, network.subnets))
        lines.append(f"# Network {network.name} (group {network.group}, {closed}): {subnets}")
    return lines


def _set(name: str, kind: str, subnets: Iterable[IPNetwork]) -> list[str]:
    elements = ", ".join(map(str, subnets))
    return [
        f"\tset {name} {{",
        f"\t\ttype {kind}",
        "\t\tflags interval",
        *([f"\t\telements = {{ {elements} }}"] if elements else []),
        "\t}",
        "",
    ]


def _quoted(name: str) -> str:
    return f'"{name}"'
