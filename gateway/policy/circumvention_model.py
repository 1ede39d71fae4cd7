"""The `circumvention:` section: which attempts to get round the filter are detected, who may use bare addresses,
when repeated attempts count as a burst, and what happens to the person (notices, an immediate ban).

The Acceptable Use Policy: "Attempts made to circumvent the network's firewalls will result in a ban from using
school computing equipment, other than with close supervision." Every detection blocks the attempt and records an
incident; the headteacher confirms it (a ban), or the policy bans at once for the techniques in `auto_ban`.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field

from gateway.circumvention.incident import Technique
from gateway.policy.alerts_model import Email
from gateway.policy.model_base import Name, Strict


class IpLiteral(Strict):
    """Web addresses that are a bare IP address (`http://93.184.216.34/`, in any spelling) skip every name-based
    list, so they are blocked for these groups. None: every group. The gateway's own portal and the internal
    services in `connections.reachable_internal` stay reachable by address."""

    groups: list[Name] | None = []
    # The school's own services on public addresses that these groups may reach by address.
    allowed: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []


class Burst(Strict):
    """This many attempts on different workaround sites within this many minutes, by one person, is one burst
    (someone working through a list of proxies or mirrors)."""

    attempts: int = Field(default=5, ge=2, le=1000)
    minutes: int = Field(default=2, ge=1, le=24 * 60)


class Notices(Strict):
    # The headteacher's (and the officer's) addresses; empty: the officer's alert recipients (reports.alerts), and
    # with none there either, incidents wait in the console and no e-mail goes.
    recipients: list[Email] = Field(default=[], max_length=20)
    # One notice per person and technique within this window, then a summary.
    window_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)


class Circumvention(Strict):
    enabled: bool = True
    # Lists whose blocks are attempts on a workaround service (VPNs, web proxies, redirectors, remote control, DoH
    # resolvers): a block on one records an incident as well.
    workaround_lists: list[Name] = []
    ip_literal: IpLiteral = IpLiteral()
    burst: Burst = Burst()
    # Techniques that ban the person at once, without waiting for the headteacher to confirm the incident.
    auto_ban: list[Technique] = []
    # A ban's default length in days; null: until the headteacher lifts it.
    ban_days: int | None = Field(default=14, ge=1, le=366)
    notices: Notices = Notices()
    # VPN and anonymiser client user agents, besides the gateway's own list (policies/circumvention/): files of
    # one lower-case fragment a line, relative to the policy file.
    user_agent_files: list[str] = []
