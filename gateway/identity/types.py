"""Who is behind a request, and which source said so."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date


class IdentitySource(enum.StrEnum):
    SUBNET = "subnet"
    DEVICE = "device"
    PORTAL = "portal"
    PROXY_AUTH = "proxy_auth"
    RADIUS = "radius"
    # Set by hand: `gateway check --group`, tests.
    GIVEN = "given"
    # A `gateway selftest` request carrying a valid signed token: decided as the token's group, never reported.
    SELFTEST = "selftest"


@dataclass(frozen=True, slots=True)
class Identity:
    group: str
    client_ip: str | None = None
    source: IdentitySource = IdentitySource.SUBNET
    # The policy network the client address fell in, if any.
    network: str | None = None
    username: str | None = None
    display_name: str | None = None
    year_group: int | None = None
    school_class: str | None = None
    date_of_birth: date | None = None
    device: str | None = None
    # "school" or "personal" for a device in the register; None for a device the register does not know.
    device_owner: str | None = None

    def describe(self) -> str:
        """One line for block pages and `whois`: the name the gateway believes."""
        parts = []
        if self.display_name or self.username:
            parts.append(f"Signed in as {self.display_name or self.username}")
        if self.device:
            parts.append(f"Device: {self.device}")
        parts.append(f"Group: {self.group}")
        return " · ".join(parts)
