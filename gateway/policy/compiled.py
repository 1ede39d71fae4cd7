"""A loaded policy turned into the immutable, precompiled structures the engine decides from.

Every list the policy names gets one bit; a host lookup answers with a mask of the lists that hold it, so a
rule matches with a single AND. Rules are pre-filtered per (group, period kind).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.circumvention.rules import CircumventionRules, compile_circumvention, user_agent_files
from gateway.content.analyser import ContentAnalyser
from gateway.content.build import build_analyser
from gateway.decisions.types import Action, PeriodKind
from gateway.identity.subnets import SubnetDirectory
from gateway.lists.index import DomainIndex, DomainSource, UrlIndex
from gateway.policy.age_limits_model import NoDateOfBirth
from gateway.policy.exceptions import ExceptionSet, compile_grant
from gateway.policy.illegal_slot import slot_warning
from gateway.policy.interception import PassThroughPlan, compile_pass_through, inline_lists, pass_through_problems
from gateway.policy.list_sources import read_lists
from gateway.policy.loader import LoadedPolicy, PolicyError, Problem, load_policy
from gateway.policy.model import Policy, Rule
from gateway.policy.timetable import SchoolCalendar
from gateway.services.age_rules import AgeTable, build_age_table
from gateway.services.age_sites import read_age_sites
from gateway.services.plans import ServicePlans, build_plans, locked_hosts

# Implicit lists hold a section's inline domains; ":" keeps their names apart from the policy's own lists.
NEVER_INTERCEPT = "inline:never_intercept"


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    action: Action
    reason: str
    mask: int
    every_site: bool
    year_groups: frozenset[int] | None
    devices: frozenset[str] | None = None
    device_ownership: frozenset[str] | None = None
    # Whether the rule names devices at all (most do not: one attribute read in the hot loop).
    device_bound: bool = False

    def fits_device(self, device: str | None, owner: str | None) -> bool:
        if self.devices is not None and (device is None or device.lower() not in self.devices):
            return False
        return self.device_ownership is None or (owner or "unregistered") in self.device_ownership


@dataclass(frozen=True)
class CompiledPolicy:
    loaded: LoadedPolicy
    calendar: SchoolCalendar
    names: tuple[str, ...]
    domains: DomainIndex
    urls: UrlIndex
    illegal_mask: int
    # The illegal lists and those marked unliftable: no exception, from the policy or the store, lifts these.
    unliftable_mask: int
    never_intercept_mask: int
    rules: tuple[tuple[Rule, CompiledRule], ...]
    exceptions: ExceptionSet
    networks: SubnetDirectory
    # Entries per policy list (domains and URL prefixes), so a reload can tell a list that was emptied.
    list_sizes: Mapping[str, int] = field(default_factory=dict)
    # Things a school should know about but that do not stop the policy loading (a UT1 category not imported).
    warnings: tuple[str, ...] = ()
    # Page-text and search-term analysis; None when the policy turns it off.
    content: ContentAnalyser | None = None
    # The circumvention detectors' settings, compiled (None only for a policy built by hand in a test).
    circumvention: CircumventionRules | None = None
    # Safe search and sign-in lock rewrites per group and host; sites' minimum ages.
    services: ServicePlans = field(default_factory=lambda: ServicePlans({}))
    age: AgeTable = field(default_factory=lambda: AgeTable(frozenset(), NoDateOfBirth.BLOCK, {}))
    # Per group, the hosts whose TLS passes through untouched (`interception.pass_through`).
    pass_through: PassThroughPlan = field(default_factory=PassThroughPlan)
    _rule_tables: dict[tuple[str, PeriodKind], tuple[CompiledRule, ...]] = field(default_factory=dict)

    @property
    def policy(self) -> Policy:
        return self.loaded.policy

    @cached_property
    def zone(self) -> ZoneInfo:
        return self.calendar.zone

    def rules_for(self, group: str, period: PeriodKind) -> tuple[CompiledRule, ...]:
        key = (group, period)
        table = self._rule_tables.get(key)
        if table is None:
            table = tuple(
                compiled
                for rule, compiled in self.rules
                if (rule.groups is None or group in rule.groups) and (rule.periods is None or period in rule.periods)
            )
            # Benign race: two threads may build the same tuple; either is correct.
            self._rule_tables[key] = table
        return table

    @cached_property
    def list_files(self) -> tuple[Path, ...]:
        """Every file the compiled policy was built from, so a reload can watch them."""
        files = [*self.loaded.sources]
        for source in self.policy.lists.values():
            files += [self.loaded.resolve(f) for f in (*source.files, *source.url_files)]
            for category in source.ut1:
                folder = self.loaded.resolve(self.policy.imports) / category
                files += [folder / "domains", folder / "urls"]
        if self.policy.content.enabled:
            files += [self.loaded.resolve(f) for f in self.policy.content.data_files]
        files += user_agent_files(self.loaded)
        files += [self.loaded.resolve(f) for f in self.policy.age_limits.files]
        return tuple(files)


def compile_policy(loaded: LoadedPolicy) -> CompiledPolicy:
    """Compile a loaded policy; PolicyError if a list file is corrupt or an exception would lift an unliftable
    list."""
    policy = loaded.policy
    rule_names = [f"rule:{rule.id}" for rule in policy.rules if rule.domains]
    pass_through_lists = inline_lists(policy)
    names = (*policy.lists, *rule_names, NEVER_INTERCEPT, *pass_through_lists)
    bits = {name: 1 << i for i, name in enumerate(names)}
    warnings: list[str] = []

    entries = read_lists(loaded)
    if entries.problems:
        raise PolicyError(entries.problems)
    domain_sources: dict[str, list[DomainSource]] = dict(entries.domains)
    url_sources = entries.urls
    if entries.missing:
        warnings.append(
            f"UT1 categories not imported yet, starter lists only: {', '.join(sorted(entries.missing))} "
            f"(run `gateway lists import` into {loaded.resolve(policy.imports)})"
        )
    slot = slot_warning(policy, entries.sizes)
    if slot is not None:
        warnings.append(slot)
    for rule in policy.rules:
        if rule.domains:
            domain_sources[f"rule:{rule.id}"] = [rule.domains]
    domain_sources[NEVER_INTERCEPT] = [policy.never_intercept.domains]
    domain_sources.update(pass_through_lists)
    domains = DomainIndex.build(names, domain_sources)
    unliftable_mask = sum(bits[n] for n, source in policy.lists.items() if source.unliftable or n in policy.illegal)
    never_intercept_mask = sum(bits[n] for n in policy.never_intercept.lists) | bits[NEVER_INTERCEPT]
    services = build_plans(policy.safe_search, policy.services, policy.groups)
    age = build_age_table(policy.age_limits, read_age_sites(loaded))
    problems = [*_lifting_exceptions(loaded, domains, unliftable_mask),
                *_passed_through_rewrites(loaded, domains, never_intercept_mask, services),
                *pass_through_problems(loaded, domains, bits, services, age)]  # fmt: skip
    if problems:
        raise PolicyError(problems)

    compiled_rules = tuple(
        (
            rule,
            CompiledRule(
                id=rule.id,
                action=rule.action,
                reason=rule.reason,
                mask=sum(bits[n] for n in rule.lists) | (bits[f"rule:{rule.id}"] if rule.domains else 0),
                every_site=rule.matches_every_site,
                year_groups=frozenset(rule.year_groups) if rule.year_groups is not None else None,
                devices=frozenset(d.lower() for d in rule.devices) if rule.devices is not None else None,
                device_ownership=frozenset(rule.device_ownership) if rule.device_ownership is not None else None,
                device_bound=rule.devices is not None or rule.device_ownership is not None,
            ),
        )
        for rule in policy.rules
    )
    zone = ZoneInfo(policy.school.timezone)
    illegal_mask = sum(bits[n] for n in policy.illegal)
    return CompiledPolicy(
        loaded=loaded,
        calendar=SchoolCalendar(policy.timetable, zone),
        names=names,
        domains=domains,
        urls=UrlIndex.build(names, url_sources),
        illegal_mask=illegal_mask,
        unliftable_mask=unliftable_mask,
        never_intercept_mask=never_intercept_mask,
        rules=compiled_rules,
        exceptions=ExceptionSet(tuple(compile_grant(g, bits, zone) for g in policy.exceptions)),
        networks=SubnetDirectory(policy.networks, policy.default_group),
        list_sizes=entries.sizes,
        warnings=tuple(warnings),
        content=build_analyser(loaded),
        circumvention=compile_circumvention(loaded),
        services=services,
        age=age,
        pass_through=compile_pass_through(policy, bits, ((r, c.mask) for r, c in compiled_rules), illegal_mask),
    )


def load_compiled(path: Path | str) -> CompiledPolicy:
    return compile_policy(load_policy(path))


def _lifting_exceptions(loaded: LoadedPolicy, domains: DomainIndex, unliftable_mask: int) -> Iterator[Problem]:
    """Exceptions in the policy that name a domain on (or under an entry of) an unliftable list."""
    names = domains.names
    for i, grant in enumerate(loaded.policy.exceptions):
        for j, domain in enumerate(grant.domains):
            for entry, mask in domains.match(domain):
                common = mask & unliftable_mask
                if common:
                    listed = names[(common & -common).bit_length() - 1]
                    yield loaded.problem(("exceptions", i, "domains", j),
                                         f"{domain!r} is on the unliftable list {listed!r} (entry {entry!r}): "
                                         "no exception can lift it")  # fmt: skip
                    break


def _passed_through_rewrites(loaded: LoadedPolicy, domains: DomainIndex, never_intercept_mask: int,
                             services: ServicePlans) -> Iterator[Problem]:  # fmt: skip
    """Hosts whose requests the gateway must change (the sign-in locks' headers, safe search) cannot be on the
    never-intercept lists: passed through untouched, they would carry no header and no forced parameter."""
    names = domains.names
    locks = locked_hosts(loaded.policy.services)
    for host in sorted(services.hosts):
        for entry, mask in domains.match(host):
            if mask & never_intercept_mask:
                listed = names[((mask & never_intercept_mask) & -(mask & never_intercept_mask)).bit_length() - 1]
                where = "never_intercept" if listed.startswith("inline:") else f"list {listed!r}"
                lock = next((name for name, hosts in locks.items() if host in hosts), None)
                loc = ("services", lock) if lock else ("safe_search",)
                yield loaded.problem(loc, f"{host} is never intercepted ({where}, entry {entry!r}), so the gateway "
                                          f"could not {'add the sign-in lock headers' if lock else 'force safe search'}"
                                          " on it: take it off the never-intercept lists")  # fmt: skip
                break
