"""The `interception:` section compiled: per group, the lists whose hosts pass through untouched, and what keeps a
host intercepted all the same (pure; the tunnel guard asks `passes_through` at each TLS ClientHello).

A pass-through entry's inline domains are an implicit list of their own (`inline:pass_through:<i>`), so a host's
one lookup in the domain index answers for the policy's lists and the section alike. A group's mask is the bits of
the entries naming it.

At load, an entry is refused (with its file, line and field) when it names a list the gateway must look inside
(the illegal-content slot, `uploads.lists`, the circumvention workaround lists, a list of paths), or when its hosts
cover a host the policy changes or checks for one of its groups (safe search, the sign-in locks, an age-gated
site). At run time a host is still intercepted when it is on such a list by another list's entry, or when one of
the group's rules (or the illegal slot) lists a path on it: a path cannot be blocked in a connection never opened.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.lists.index import DomainIndex
from gateway.policy.loader import LoadedPolicy, Problem
from gateway.policy.model import Policy, Rule
from gateway.services.age_rules import AgeTable
from gateway.services.plans import ServicePlans, locked_hosts

if TYPE_CHECKING:
    from gateway.policy.compiled import CompiledPolicy

INLINE = "inline:pass_through:"


@dataclass(frozen=True, slots=True)
class PassThroughPlan:
    # Per group: the lists whose hosts pass through for it.
    by_group: Mapping[str, int] = field(default_factory=dict)
    # Lists whose hosts stay intercepted for everyone, whichever other list also holds them (the illegal slot
    # among them).
    kept: int = 0
    # Per group: the lists its rules use, and the illegal slot: a path entry on one keeps its host intercepted.
    paths: Mapping[str, int] = field(default_factory=dict)


def inline_lists(policy: Policy) -> dict[str, list[list[str]]]:
    """The implicit list of each entry's inline domains, by name (as the domain index takes its sources)."""
    return {f"{INLINE}{i}": [entry.domains] for i, entry in enumerate(policy.interception.pass_through)
            if entry.domains}  # fmt: skip


def kept_lists(policy: Policy) -> set[str]:
    """Lists whose hosts the gateway must always see inside."""
    kept = set(policy.illegal)
    if policy.uploads.enabled:
        kept.update(policy.uploads.lists)
    if policy.circumvention.enabled:
        kept.update(policy.circumvention.workaround_lists)
    return kept


def compile_pass_through(policy: Policy, bits: Mapping[str, int], rules: Iterable[tuple[Rule, int]],
                         illegal_mask: int) -> PassThroughPlan:  # fmt: skip
    """`rules`: each rule with its compiled list mask."""
    by_group: dict[str, int] = {}
    for i, entry in enumerate(policy.interception.pass_through):
        mask = sum(bits[n] for n in entry.lists) | bits.get(f"{INLINE}{i}", 0)
        for group in entry.groups:
            by_group[group] = by_group.get(group, 0) | mask
    rules = tuple(rules)
    paths = {group: illegal_mask | sum(mask for rule, mask in rules if rule.groups is None or group in rule.groups)
             for group in by_group}  # fmt: skip
    return PassThroughPlan(by_group, sum(bits[n] for n in kept_lists(policy) if n in bits), paths)


def passes_through(compiled: CompiledPolicy, group: str, host: str, bits: int) -> bool:
    """Whether a connection of `group` to `host` (a normalised TLS server name held by the lists in `bits`) may be
    relayed untouched by the group's pass-through lists."""
    plan = compiled.pass_through
    if not bits & plan.by_group.get(group, 0) or bits & plan.kept:
        return False
    if compiled.services.for_group(group).get(host) is not None:
        return False
    if group in compiled.age.groups and compiled.age.site_for(host) is not None:
        return False
    return not compiled.urls.host_mask(host) & plan.paths[group]


def pass_through_problems(loaded: LoadedPolicy, domains: DomainIndex, bits: Mapping[str, int],
                          services: ServicePlans, age: AgeTable) -> Iterator[Problem]:  # fmt: skip
    """Entries that would switch off, for one of their groups, something the policy asks the gateway to do."""
    policy = loaded.policy
    kept = kept_lists(policy)
    locks = locked_hosts(policy.services)
    for i, entry in enumerate(policy.interception.pass_through):
        at = ("interception", "pass_through", i)
        for j, group in enumerate(entry.groups):
            if group not in policy.groups:
                known = ", ".join(policy.groups)
                yield loaded.problem((*at, "groups", j), f"unknown group {group!r} (groups: {known})")
        mask = bits.get(f"{INLINE}{i}", 0)
        for j, name in enumerate(entry.lists):
            problem = _list_problem(policy, name, kept)
            if problem is not None:
                yield loaded.problem((*at, "lists", j), problem)
            else:
                mask |= bits[name]
        kept_mask = sum(bits[n] for n in kept if n in bits)
        for j, domain in enumerate(entry.domains):
            on = next((m & kept_mask for _, m in domains.match(domain) if m & kept_mask), 0)
            if on:
                listed = domains.names_in(on)[0]
                yield loaded.problem((*at, "domains", j), f"{domain} is on the list {listed!r}, which the gateway "
                                                          "must see inside: it cannot pass through")  # fmt: skip
        groups = [g for g in entry.groups if g in policy.groups]
        yield from _covered(loaded, at, domains, mask, entry.domains, groups, services, age, locks)


def _list_problem(policy: Policy, name: str, kept: set[str]) -> str | None:
    source = policy.lists.get(name)
    if source is None:
        return f"unknown list {name!r} (lists: {', '.join(sorted(policy.lists)) or 'none'})"
    if name in policy.illegal:
        return f"list {name!r} is in the illegal-content slot: it is never passed through"
    if name in kept:
        why = "uploads.lists (uploads to its hosts are checked)" if name in policy.uploads.lists else \
            "circumvention.workaround_lists (its hosts are attempts to get round the filter)"
        return f"list {name!r} is in {why}: its hosts must be intercepted"
    if source.url_files:
        return f"list {name!r} has paths (url_files): a connection passed through shows no path to match"
    return None


def _covered(loaded: LoadedPolicy, at: tuple[str | int, ...], domains: DomainIndex, mask: int, inline: list[str],
             groups: list[str], services: ServicePlans, age: AgeTable,
             locks: Mapping[str, tuple[str, ...]]) -> Iterator[Problem]:  # fmt: skip
    """Hosts the policy changes or age-checks for one of `groups` that the entry's hosts (`mask`) cover."""
    # Groups mostly share their hosts (every country's Google for safe search): each is looked up once.
    covered: dict[str, bool] = {}

    def under(host: str) -> bool:
        found = covered.get(host)
        if found is None:
            found = covered[host] = any(m & mask for _, m in domains.match(host))
        return found

    for group in groups:
        for host in sorted(services.for_group(group)):
            if under(host):
                lock = next((name for name, hosts in locks.items() if host in hosts), None)
                what = f"add the sign-in lock headers ({lock})" if lock else "force safe search"
                yield loaded.problem(at, f"{host} would pass through for {group}, so the gateway could not {what} "
                                         "on it: take it off this pass-through")  # fmt: skip
                return
        if group not in age.groups:
            continue
        gated = [site for site in sorted(age.by_domain) if under(site)]
        gated += [d for d in inline if age.site_for(d) is not None]
        if gated:
            yield loaded.problem(at, f"{gated[0]} has a minimum age for {group}: its sign-up pages could not be "
                                     "checked if it passed through")  # fmt: skip
            return
