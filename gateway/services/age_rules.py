"""The age gate, decided (pure): is this page a sign-up page (or any page, for a whole-site gate) of a site whose
minimum age is above this person's age on this day?

Only people in the policy's `age_limits.groups` are checked. Their age comes from the roster's date of birth; with
none, the policy says (`no_date_of_birth`): blocked by default, or the youngest age of their year group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from gateway.decisions.types import Action, Decision, PeriodKind, Source
from gateway.identity.ages import age_on, youngest_age_in_year_group
from gateway.identity.types import Identity
from gateway.lists.hosts import suffixes
from gateway.policy.age_limits_model import AgeLimits, AgeSite, NoDateOfBirth
from gateway.services.rewrite import normal_path, under

RULE = "age-limit"


@dataclass(frozen=True, slots=True)
class GatedSite:
    name: str
    minimum_age: int
    whole_site: bool
    # Sign-up path prefixes (normal form) on any of the site's hosts, and per host.
    paths: tuple[str, ...]
    host_paths: Mapping[str, tuple[str, ...]]

    def is_sign_up(self, host: str, path: str) -> bool:
        normal = normal_path(path)
        return under(normal, self.paths) or under(normal, self.host_paths.get(host, ()))


@dataclass(frozen=True, slots=True)
class AgeRule:
    """What the age gate says about one request, for the proxy and for `gateway check`."""

    site: GatedSite
    # Whether the person's group is age-checked at all.
    checked: bool
    # The page is one the gate covers: a sign-up page, or any page of a whole-site gate.
    gated_page: bool
    age: int | None
    # "date of birth", "year group", or None when the age is unknown.
    age_from: str | None
    blocked: bool

    def reason(self) -> str:
        """The block page's words, for a child."""
        site, minimum = self.site.name, self.site.minimum_age
        if self.site.whole_site:
            first = (f"You need to be {minimum} to use {site}. {site}'s own rules are for people aged {minimum} and "
                     "over, so the school's filter keeps it closed until you are old enough.")  # fmt: skip
        else:
            first = (f"You need to be {minimum} to join {site}. {site}'s own rules say you must be {minimum} or "
                     "older to have an account, so the school's filter stops its sign-up pages until you are.")  # fmt: skip
        if self.age is None:
            return first + (" The school does not know your date of birth, so it cannot check your age. If you are "
                            f"{minimum} or older, ask your teacher to have it added.")  # fmt: skip
        return first + " You can still learn about staying safe online with your teacher."

    def decision(self, period: PeriodKind, host: str) -> Decision:
        return Decision(Action.BLOCK, Source.AGE, self.reason(), period, host, rule=RULE,
                        matched=f"{self.site.name} ({self.site.minimum_age}+)")  # fmt: skip


@dataclass(frozen=True, slots=True)
class AgeTable:
    groups: frozenset[str]
    no_date_of_birth: NoDateOfBirth
    by_domain: Mapping[str, GatedSite]

    def site_for(self, host: str) -> GatedSite | None:
        if not self.by_domain:
            return None
        for suffix in suffixes(host):
            site = self.by_domain.get(suffix)
            if site is not None:
                return site
        return None

    def age(self, identity: Identity, day: date) -> tuple[int | None, str | None]:
        if identity.date_of_birth is not None:
            return age_on(identity.date_of_birth, day), "date of birth"
        if self.no_date_of_birth is NoDateOfBirth.YEAR_GROUP and identity.year_group is not None:
            return youngest_age_in_year_group(identity.year_group), "year group"
        return None, None

    def rule(self, identity: Identity, host: str, path: str, day: date) -> AgeRule | None:
        """The age rule for a request to `host` (normalised) and `path`; None when the site has no age limit."""
        site = self.site_for(host)
        if site is None:
            return None
        checked = identity.group in self.groups
        gated_page = site.whole_site or site.is_sign_up(host, path)
        age, age_from = self.age(identity, day)
        if age is None:
            too_young = self.no_date_of_birth is not NoDateOfBirth.ALLOW
        else:
            too_young = age < site.minimum_age
        return AgeRule(site, checked, gated_page, age, age_from, checked and gated_page and too_young)

    def blocks(self, identity: Identity, host: str, path: str, day: date) -> AgeRule | None:
        """The rule when it blocks this request, else None: the proxy's question (cheap for other groups)."""
        if identity.group not in self.groups:
            return None
        rule = self.rule(identity, host, path, day)
        return rule if rule is not None and rule.blocked else None

    def blocks_whole_site(self, identity: Identity, host: str, day: date) -> AgeRule | None:
        """For a connection (no path yet): the rule when the whole site is closed to this person."""
        if identity.group not in self.groups:
            return None
        site = self.site_for(host)
        if site is None or not site.whole_site:
            return None
        return self.blocks(identity, host, "/", day)


def _gated(site: AgeSite) -> GatedSite:
    paths: list[str] = []
    host_paths: dict[str, list[str]] = {}
    for shape in site.sign_up:
        if shape.startswith("/"):
            paths.append(normal_path(shape))
        else:
            host, _, path = shape.partition("/")
            host_paths.setdefault(host.lower().rstrip("."), []).append(normal_path("/" + path))
    return GatedSite(site.name, site.minimum_age, site.whole_site, tuple(paths),
                     {host: tuple(p) for host, p in host_paths.items()})  # fmt: skip


def build_age_table(limits: AgeLimits, sites: Iterable[AgeSite]) -> AgeTable:
    """The table the gate decides from: `sites` (the files' sites, then the policy's own: a later site of the same
    name replaces an earlier one) by domain."""
    by_name = {site.name: site for site in sites}
    by_domain: dict[str, GatedSite] = {}
    for site in by_name.values():
        gated = _gated(site)
        for domain in site.domains:
            by_domain[domain] = gated
    return AgeTable(frozenset(limits.groups), limits.no_date_of_birth, by_domain)
