"""Client address -> the policy network it is on, and that network's default group."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

from gateway.identity.types import Identity, IdentitySource
from gateway.policy.model import Network


class SubnetDirectory:
    def __init__(self, networks: Sequence[Network], default_group: str) -> None:
        self.default_group = default_group
        # Most specific subnet first, so a small staff range inside a wider pupil range wins.
        self._subnets = sorted(
            ((subnet, network) for network in networks for subnet in network.subnets),
            key=lambda pair: pair[0].prefixlen,
            reverse=True,
        )
        self.network_for = lru_cache(maxsize=65536)(self._network_for)

    def _network_for(self, client_ip: str) -> Network | None:
        try:
            address = ipaddress.ip_address(client_ip.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return next((network for subnet, network in self._subnets if address in subnet), None)

    def identify(self, client_ip: str) -> Identity:
        network = self.network_for(client_ip)
        if network is None:
            return Identity(group=self.default_group, client_ip=client_ip, source=IdentitySource.SUBNET)
        return Identity(group=network.group, client_ip=client_ip, source=IdentitySource.SUBNET, network=network.name)
