"""The `circumvention:` section compiled once per policy into what the detectors read on every request: sets,
networks and one User-Agent matcher."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gateway.circumvention.addresses import IPAddress
from gateway.circumvention.incident import Detection, Technique
from gateway.circumvention.user_agents import BUILT_IN, BadFragmentFile, UserAgentMatcher, read_fragments
from gateway.policy.circumvention_model import Circumvention
from gateway.policy.loader import LoadedPolicy, PolicyError, Problem


@dataclass(frozen=True)
class CircumventionRules:
    settings: Circumvention
    workaround_lists: frozenset[str]
    # None: bare addresses are blocked for every group.
    ip_literal_groups: frozenset[str] | None
    ip_literal_allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    user_agents: UserAgentMatcher
    auto_ban: frozenset[Technique]

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def bars_addresses(self, group: str) -> bool:
        """Whether this group is kept from bare addresses."""
        groups = self.ip_literal_groups
        return groups is None or group in groups

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.ip_literal_allowed)

    def row_value(self, detection: Detection) -> dict[str, Any]:
        """The access-log row's `incident`: the detection, and whether the policy bans for it at once."""
        value = detection.as_row_value()
        if detection.technique in self.auto_ban:
            value["auto_ban"] = True
            value["ban_days"] = self.settings.ban_days
        return value


def compile_circumvention(loaded: LoadedPolicy) -> CircumventionRules:
    """PolicyError when a User-Agent file cannot be read."""
    settings = loaded.policy.circumvention
    fragments: list[str] = []
    problems = list(_read_user_agents(loaded, fragments))
    if problems:
        raise PolicyError(problems)
    groups = settings.ip_literal.groups
    return CircumventionRules(
        settings=settings,
        workaround_lists=frozenset(settings.workaround_lists),
        ip_literal_groups=frozenset(groups) if groups is not None else None,
        ip_literal_allowed=tuple(settings.ip_literal.allowed),
        user_agents=UserAgentMatcher(fragments),
        auto_ban=frozenset(settings.auto_ban),
    )


def user_agent_files(loaded: LoadedPolicy) -> list:
    """Every file the User-Agent matcher is built from, so a reload can watch them."""
    return [BUILT_IN, *(loaded.resolve(f) for f in loaded.policy.circumvention.user_agent_files)]


def _read_user_agents(loaded: LoadedPolicy, into: list[str]) -> Iterator[Problem]:
    files = loaded.policy.circumvention.user_agent_files
    for loc, path in [(("circumvention",), BUILT_IN),
                      *((("circumvention", "user_agent_files", j), loaded.resolve(f)) for j, f in enumerate(files))]:  # fmt: skip
        try:
            into += read_fragments(path)
        except BadFragmentFile as exc:
            yield loaded.problem(loc, str(exc))
