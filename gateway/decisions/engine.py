"""The decision engine: (compiled policy, identity, host and path, instant) -> Decision. Pure; the proxy's hot path.

Fixed precedence: illegal-content lists always block; then a supervised-only ban of the person; then exceptions,
except for a host on an unliftable list; then rules, first match wins (only blocking rules for a host on an
unliftable list); then the policy default.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.types import Identity
from gateway.lists.hosts import normalise_host, suffixes
from gateway.policy.bans import BAN_REASON
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.exceptions import EMPTY, ExceptionSet

ILLEGAL_REASON = (
    "This address is on an illegal-content list (IWF/CTIRU). It is always blocked and no one can unblock it."
)

Hits = Sequence[tuple[str, int]]


class InvalidTarget(ValueError):
    pass


def split_target(target: str) -> tuple[str, str]:
    """A URL (`https://host/path?q`) or a bare host (`host`, `host:port/path`) -> (normalised host, path)."""
    text = target.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        raw_host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise InvalidTarget(f"not a URL or host: {target!r} ({exc})") from None
    host = normalise_host(raw_host)
    if host is None:
        raise InvalidTarget(f"not a valid host name: {raw_host or target!r}")
    path = parts.path or "/"
    return host, f"{path}?{parts.query}" if parts.query else path


def decide_target(
    policy: CompiledPolicy, identity: Identity, target: str, instant: datetime, exceptions: ExceptionSet = EMPTY
) -> Decision:
    host, path = split_target(target)
    return decide(policy, identity, host, path, instant, exceptions)


def decide(
    policy: CompiledPolicy,
    identity: Identity,
    host: str,
    path: str,
    instant: datetime,
    exceptions: ExceptionSet = EMPTY,
) -> Decision:
    """Decide for a normalised host; `path` may carry the query. A naive instant is school-local."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=policy.zone)
    period = policy.calendar.period(instant)
    hits: Hits = policy.domains.match(host)
    if policy.urls:
        hits = [*hits, *policy.urls.match(host, path)]
    mask = 0
    for _, bits in hits:
        mask |= bits

    if mask & policy.illegal_mask:
        return _listed(policy, Action.BLOCK, Source.ILLEGAL, ILLEGAL_REASON, period, host, None, hits, policy.illegal_mask)

    # A ban stops everything but the illegal lists' own block (which keeps its reason for the officer's reports).
    if exceptions.bans is not None and exceptions.bans.blocking(identity, host, path) is not None:
        return Decision(Action.BLOCK, Source.BAN, BAN_REASON, period, host, rule="supervised-only")

    grants = policy.exceptions + exceptions if exceptions else policy.exceptions
    # The loader refuses policy exceptions that would lift an unliftable list; this also holds for exceptions
    # handed in at run time, and for lists that gained a host after the exception was written.
    if grants and not mask & policy.unliftable_mask:
        decision = _exception(policy, grants, identity, host, period, instant, hits, mask)
        if decision is not None:
            return decision

    # A rule that lets a site through cannot let through a host on an unliftable list either, however broad its
    # domains or `every_site`: only blocking rules decide those hosts.
    unliftable = mask & policy.unliftable_mask
    for rule in policy.rules_for(identity.group, period):
        if rule.year_groups is not None and identity.year_group not in rule.year_groups:
            continue
        if rule.device_bound and not rule.fits_device(identity.device, identity.device_owner):
            continue
        if unliftable and rule.action is not Action.BLOCK:
            continue
        if rule.every_site:
            return Decision(rule.action, Source.RULE, rule.reason, period, host, rule=rule.id)
        if rule.mask & mask:
            return _listed(policy, rule.action, Source.RULE, rule.reason, period, host, rule.id, hits, rule.mask)

    default = policy.policy.default
    return Decision(default.action, Source.DEFAULT, default.reason, period, host)


def _exception(
    policy: CompiledPolicy,
    grants: ExceptionSet,
    identity: Identity,
    host: str,
    period: PeriodKind,
    instant: datetime,
    hits: Hits,
    mask: int,
) -> Decision | None:
    host_suffixes = suffixes(host)
    for grant in grants.grants:
        if not grant.applies_to(identity, period, instant):
            continue
        via = grant.covers(host_suffixes, mask)
        if via is None:
            continue
        if via == "list":
            return _listed(policy, grant.action, Source.EXCEPTION, grant.reason, period, host, grant.id, hits, grant.mask)
        return Decision(grant.action, Source.EXCEPTION, grant.reason, period, host, rule=grant.id, matched=via)
    return None


def _listed(
    policy: CompiledPolicy,
    action: Action,
    source: Source,
    reason: str,
    period: PeriodKind,
    host: str,
    rule: str | None,
    hits: Hits,
    wanted: int,
) -> Decision:
    """A decision that names the list and the entry (longest matching suffix or URL prefix) behind it."""
    for entry, bits in hits:
        common = bits & wanted
        if common:
            # The lowest list bit both share names the list; policy lists come first, in the policy's order.
            name = policy.names[(common & -common).bit_length() - 1]
            return Decision(action, source, reason, period, host, rule=rule, list=name, matched=entry)
    raise AssertionError("a listed decision without a matching hit")
