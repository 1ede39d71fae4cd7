"""A loaded policy turned into the immutable, precompiled structures the engine decides from.

Every list the policy names gets one bit; a host lookup answers with a mask of the lists that hold it, so a
rule matches with a single AND. Rules are pre-filtered per (group, period kind).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.decisions.types import Action, PeriodKind
from gateway.identity.subnets import SubnetDirectory
from gateway.lists.cache import load_domains
from gateway.lists.files import read_url_file
from gateway.lists.index import DomainIndex, DomainSource, UrlIndex
from gateway.policy.exceptions import ExceptionSet, compile_grant
from gateway.policy.loader import LoadedPolicy, load_policy
from gateway.policy.model import Policy, Rule
from gateway.policy.timetable import SchoolCalendar

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


@dataclass(frozen=True)
class CompiledPolicy:
    loaded: LoadedPolicy
    calendar: SchoolCalendar
    names: tuple[str, ...]
    domains: DomainIndex
    urls: UrlIndex
    illegal_mask: int
    never_intercept_mask: int
    rules: tuple[tuple[Rule, CompiledRule], ...]
    exceptions: ExceptionSet
    networks: SubnetDirectory
    # Things a school should know about but that do not stop the policy loading (a UT1 category not imported).
    warnings: tuple[str, ...] = ()
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
        files = [self.loaded.path]
        for source in self.policy.lists.values():
            files += [self.loaded.resolve(f) for f in (*source.files, *source.url_files)]
            for category in source.ut1:
                folder = self.loaded.resolve(self.policy.imports) / category
                files += [folder / "domains", folder / "urls"]
        return tuple(files)


def compile_policy(loaded: LoadedPolicy) -> CompiledPolicy:
    policy = loaded.policy
    rule_names = [f"rule:{rule.id}" for rule in policy.rules if rule.domains]
    names = (*policy.lists, *rule_names, NEVER_INTERCEPT)
    bits = {name: 1 << i for i, name in enumerate(names)}
    warnings: list[str] = []
    missing: list[str] = []

    domain_sources: dict[str, list[DomainSource]] = {}
    url_sources: dict[str, list[str]] = {}
    imports = loaded.resolve(policy.imports)
    for name, source in policy.lists.items():
        sources: list[DomainSource] = [load_domains(loaded.resolve(f)) for f in source.files]
        urls: list[str] = [entry for f in source.url_files for entry in _url_entries(loaded.resolve(f), warnings)]
        if source.domains:
            sources.append(source.domains)
        for category in source.ut1:
            folder = imports / category
            if not (folder / "domains").is_file():
                missing.append(category)
                continue
            sources.append(load_domains(folder / "domains"))
            if (folder / "urls").is_file():
                urls.extend(_url_entries(folder / "urls", warnings))
        domain_sources[name] = sources
        url_sources[name] = urls
    if missing:
        warnings.append(
            f"UT1 categories not imported yet, starter lists only: {', '.join(sorted(set(missing)))} "
            f"(run `gateway lists import` into {imports})"
        )
    for rule in policy.rules:
        if rule.domains:
            domain_sources[f"rule:{rule.id}"] = [rule.domains]
    domain_sources[NEVER_INTERCEPT] = [policy.never_intercept.domains]

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
            ),
        )
        for rule in policy.rules
    )
    zone = ZoneInfo(policy.school.timezone)
    return CompiledPolicy(
        loaded=loaded,
        calendar=SchoolCalendar(policy.timetable, zone),
        names=names,
        domains=DomainIndex.build(names, domain_sources),
        urls=UrlIndex.build(names, url_sources),
        illegal_mask=sum(bits[n] for n in policy.illegal),
        never_intercept_mask=sum(bits[n] for n in policy.never_intercept.lists) | bits[NEVER_INTERCEPT],
        rules=compiled_rules,
        exceptions=ExceptionSet(tuple(compile_grant(g, bits, zone) for g in policy.exceptions)),
        networks=SubnetDirectory(policy.networks, policy.default_group),
        warnings=tuple(warnings),
    )


def load_compiled(path: Path | str) -> CompiledPolicy:
    return compile_policy(load_policy(path))


def _url_entries(path: Path, warnings: list[str]) -> list[str]:
    parsed = read_url_file(path)
    if parsed.bad_count:
        warnings.append(f"{path}: {parsed.bad_count} unreadable lines skipped (first: {parsed.bad[0]})")
    return parsed.entries
