"""What the gateway changes on a request to each host, per group, precompiled from the policy: the safe-search
parameters and cookie settings, YouTube's restricted-mode header and the sign-in lock headers.

The proxy asks `plans.for_group(group).get(host)`: one dict lookup, None for every host that is neither a search
engine nor a sign-in host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gateway.policy.safe_search_model import SafeSearch, SearchMode, Services, YouTubeMode
from gateway.services.engines import (
    GOOGLE_SIGN_IN_HEADER, GOOGLE_SIGN_IN_HOSTS, MICROSOFT_CONTEXT_HEADER, MICROSOFT_SIGN_IN_HOSTS,
    MICROSOFT_TENANTS_HEADER, SEARCH_ENGINES, YOUTUBE, YOUTUBE_HEADER, YOUTUBE_HOSTS, YOUTUBE_VALUES, SearchEngine,
)  # fmt: skip
from gateway.services.rewrite import normal_path

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class HostPlan:
    params: Pairs = ()
    # The forced parameters' names, lower case: any the request carries, in any spelling, are dropped.
    param_names: frozenset[str] = frozenset()
    # Normal path prefixes the parameters apply to; None: every path.
    paths: tuple[str, ...] | None = None
    cookies: tuple[tuple[str, Pairs], ...] = ()
    # Set on every request to the host, replacing any the client sent.
    headers: Pairs = ()


def _merge(a: HostPlan | None, b: HostPlan) -> HostPlan:
    if a is None:
        return b
    if not a.params or not b.params:
        paths = b.paths if not a.params else a.paths
    else:
        paths = None if a.paths is None or b.paths is None else tuple(dict.fromkeys((*a.paths, *b.paths)))
    return HostPlan(params=a.params + b.params, param_names=a.param_names | b.param_names, paths=paths,
                    cookies=a.cookies + b.cookies, headers=a.headers + b.headers)  # fmt: skip


@dataclass(frozen=True)
class ServicePlans:
    by_group: Mapping[str, Mapping[str, HostPlan]]
    # What a group the policy does not define gets (never reached: identities carry a policy group).
    fallback: Mapping[str, HostPlan] = field(default_factory=dict)

    def for_group(self, group: str) -> Mapping[str, HostPlan]:
        return self.by_group.get(group, self.fallback)

    @property
    def hosts(self) -> frozenset[str]:
        """Every host any group's requests are changed on."""
        return frozenset(host for table in (*self.by_group.values(), self.fallback) for host in table)


def _engines(safe_search: SafeSearch) -> dict[str, SearchEngine]:
    """The built-in search engines with the policy's additions, and the policy's own engines."""
    engines = dict(SEARCH_ENGINES)
    for name, spec in safe_search.engines.items():
        if name == YOUTUBE:
            continue
        base = engines.get(name)
        params = tuple(spec.params.items())
        if base is None:
            engines[name] = SearchEngine(tuple(spec.hosts), params, tuple(spec.paths) if spec.paths else None)
            continue
        forced = dict(base.params) | spec.params
        paths = base.paths if spec.paths is None or base.paths is None else (*base.paths, *spec.paths)
        engines[name] = SearchEngine((*base.hosts, *spec.hosts), tuple(forced.items()), paths, base.cookies)
    return engines


def _search_plan(engine: SearchEngine) -> HostPlan:
    paths = None if engine.paths is None else tuple(normal_path(p) for p in engine.paths)
    return HostPlan(params=engine.params, param_names=frozenset(n.lower() for n, _ in engine.params), paths=paths,
                    cookies=engine.cookies)  # fmt: skip


def _add(table: dict[str, HostPlan], hosts: Iterable[str], plan: HostPlan) -> None:
    for host in hosts:
        table[host] = _merge(table.get(host), plan)


def _table(safe_search: SafeSearch, services: Services, group: str | None, engines: dict[str, SearchEngine],
           youtube_hosts: tuple[str, ...]) -> dict[str, HostPlan]:  # fmt: skip
    settings = safe_search.for_group(group) if group is not None else safe_search.default
    table: dict[str, HostPlan] = {}
    if settings.search is SearchMode.STRICT:
        for engine in engines.values():
            _add(table, engine.hosts, _search_plan(engine))
    if settings.youtube is not YouTubeMode.OFF:
        _add(table, youtube_hosts, HostPlan(headers=((YOUTUBE_HEADER, YOUTUBE_VALUES[settings.youtube]),)))
    google = services.google_sign_in
    if google is not None and (google.groups is None or group in google.groups):
        header = ((GOOGLE_SIGN_IN_HEADER, ",".join(google.allowed_domains)),)
        _add(table, (*GOOGLE_SIGN_IN_HOSTS, *google.extra_hosts), HostPlan(headers=header))
    microsoft = services.microsoft_sign_in
    if microsoft is not None and (microsoft.groups is None or group in microsoft.groups):
        headers = ((MICROSOFT_TENANTS_HEADER, ",".join(microsoft.tenants)), (MICROSOFT_CONTEXT_HEADER, microsoft.context))
        _add(table, (*MICROSOFT_SIGN_IN_HOSTS, *microsoft.extra_hosts), HostPlan(headers=headers))
    return table


def build_plans(safe_search: SafeSearch, services: Services, groups: Iterable[str]) -> ServicePlans:
    engines = _engines(safe_search)
    extra = safe_search.engines.get(YOUTUBE)
    youtube_hosts = (*YOUTUBE_HOSTS, *(extra.hosts if extra else ()))
    return ServicePlans(
        by_group={group: _table(safe_search, services, group, engines, youtube_hosts) for group in groups},
        fallback=_table(safe_search, services, None, engines, youtube_hosts),
    )


def locked_hosts(services: Services) -> dict[str, tuple[str, ...]]:
    """The sign-in hosts each configured lock sets its headers on (for the never-intercept check)."""
    locks: dict[str, tuple[str, ...]] = {}
    if services.google_sign_in is not None:
        locks["google_sign_in"] = (*GOOGLE_SIGN_IN_HOSTS, *services.google_sign_in.extra_hosts)
    if services.microsoft_sign_in is not None:
        locks["microsoft_sign_in"] = (*MICROSOFT_SIGN_IN_HOSTS, *services.microsoft_sign_in.extra_hosts)
    return locks
