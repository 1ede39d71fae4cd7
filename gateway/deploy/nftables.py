"""The nftables ruleset that makes a Linux gateway filter its WiFi VLANs transparently (pure: text out).

Web traffic (TCP 80 and 443) from the policy's client subnets is redirected to the proxy's transparent port, so a
device with no proxy settings is filtered and known by its own address (no SNAT before the proxy). QUIC (UDP 443)
is dropped so browsers fall back to TCP, where the gateway sees them. The gateway's own traffic (output chain) and
traffic to the gateway itself (console, portal, DNS) are left alone.

Fail closed or open: the subnets of fail-closed groups are redirected unconditionally, and their forwarded 80/443 is
dropped, so with the proxy down pupils get a refused connection, never the open internet. Fail-open subnets are
redirected only while their set is filled; the proxy's systemd unit loads this file when it starts and empties the
set when it stops, so staff and guests are routed around a stopped proxy.
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
                networks: Sequence[str] = ()) -> Transparent:  # fmt: skip
    """Check the operator's choices against the policy; `fail_closed` names groups, or is `["all"]`."""
    if not 0 < proxy_port < 65536:
        raise DeployError(f"proxy port {proxy_port} is not a port")
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
    return Transparent(found, frozenset(chosen), proxy_port, tuple(interfaces))


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
    port = setup.proxy_port
    lines += [
        "\tchain prerouting {",
        "\t\ttype nat hook prerouting priority dstnat; policy accept;",
        "\t\t# Traffic to the gateway itself (console, sign-in portal, DNS, SSH) is not the web: never redirected.",
        "\t\tfib daddr type local accept",
        "\t\t# Pupils' web traffic always goes to the proxy; with the proxy down the connection is refused (fail",
        "\t\t# closed). The source address is kept: the proxy knows the device, and so its group, by it.",
        *(f"\t\t{wifi}{family} saddr @fail_closed_v{v} tcp dport {WEB_PORTS} redirect to :{port}"
          for v, family in ((4, "ip"), (6, "ip6"))),
        "\t\t# Other networks go to the proxy while their set is filled: the proxy's unit loads this file when it",
        f"\t\t# starts and runs `nft flush set inet {TABLE} fail_open_v4` (and _v6) when it stops.",
        *(f"\t\t{wifi}{family} saddr @fail_open_v{v} tcp dport {WEB_PORTS} redirect to :{port}"
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
        "\t}",
        "",
        "\t# No output chain: the gateway's own connections (the proxy's upstream ones among them) are left alone.",
        "}",
    ]
    return "\n".join(lines) + "\n"


def flush_fail_open() -> list[list[str]]:
    """The nft commands that route fail-open networks around a stopped proxy."""
    return [["flush", "set", "inet", TABLE, f"fail_open_v{v}"] for v in (4, 6)]


def _network_comments(setup: Transparent) -> list[str]:
    lines = [f"# Proxy's transparent port: {setup.proxy_port}."]
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
