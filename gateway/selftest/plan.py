"""What a self-test asks for: per DfE/UKSIC category, known-bad addresses sampled from the policy's own lists for
it and known-good educational sites (`policies/selftest/selftest.yaml`), the illegal-content slot's test entry,
and what the standards expect for each group. Pure: reads the policy and the data file, sends nothing."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from gateway.lists.files import read_domain_file
from gateway.policy.illegal_slot import licensed_lists, slot_warning
from gateway.policy.list_sources import read_lists
from gateway.policy.loader import LoadedPolicy, PolicyError
from gateway.selftest.categories import SelftestCategory
from gateway.selftest.content_pages import HOST as CONTENT_HOST
from gateway.selftest.content_pages import harmful_pages

DATA_FILE = Path(__file__).resolve().parents[2] / "policies" / "selftest" / "selftest.yaml"
# Known-bad addresses tried per category: enough to show the lists are applied, few enough to run in seconds.
BAD_PER_CATEGORY = 3
ILLEGAL = "illegal"
# Pages whose words alone should be blocked (real-time content analysis).
CONTENT = "content"


class Expect(enum.StrEnum):
    # Every known-bad address blocked.
    BLOCK = "block"
    # Blocked, or let through and reported to the e-safety officer.
    FILTER = "filter"


@dataclass(frozen=True, slots=True)
class Probe:
    category: str  # a SelftestCategory value, or "illegal"
    url: str
    known_bad: bool


@dataclass(frozen=True, slots=True)
class Plan:
    school: str
    groups: tuple[str, ...]
    # Every request is decided as this year group (rules and content thresholds may differ by year); None: no year.
    year_group: int | None
    expect: Mapping[str, Expect]
    probes: tuple[Probe, ...]
    # Categories no list of the policy fills: nothing to test them with.
    uncovered: tuple[SelftestCategory, ...]
    slot_filled: bool
    slot_lists: tuple[str, ...]
    # The self-test server's pages by path: the harmful-text pages for content analysis.
    pages: Mapping[str, str]


class SelftestDataError(ValueError):
    pass


def build_plan(loaded: LoadedPolicy, groups: Sequence[str] | None = None, year_group: int | None = None,
               data_file: Path = DATA_FILE) -> Plan:  # fmt: skip
    policy = loaded.policy
    unknown = [g for g in groups or () if g not in policy.groups]
    if unknown:
        raise SelftestDataError(f"unknown group {unknown[0]!r} (groups: {', '.join(policy.groups)})")
    data = _read_data(data_file)
    by_category: dict[SelftestCategory, list[str]] = {}
    for name, source in policy.lists.items():
        if source.category is not None:
            by_category.setdefault(source.category, []).append(name)
    illegal_test = [name for name in policy.illegal if policy.lists[name].test_entries]
    slot = read_lists(loaded, only=policy.illegal)
    if slot.problems:
        raise PolicyError(slot.problems)

    probes: list[Probe] = []
    for name in illegal_test:
        probes += [Probe(ILLEGAL, f"http://{host}/", True) for host in _sample(loaded, [name], 1)]
    for category in SelftestCategory:
        bad = _sample(loaded, by_category.get(category, []), BAD_PER_CATEGORY)
        probes += [Probe(category.value, f"http://{host}/", True) for host in bad]
        probes += [Probe(category.value, url, False) for url in data["known_good"].get(category.value, [])]
    pages = harmful_pages(loaded, groups or tuple(policy.groups), year_group)
    probes += [Probe(CONTENT, f"http://{CONTENT_HOST}/{name}", True) for name in pages]
    covered = {p.category for p in probes if p.known_bad}
    return Plan(
        school=policy.school.name,
        groups=tuple(groups or policy.groups),
        year_group=year_group,
        expect={g: Expect(data["expect"].get(g, Expect.BLOCK)) for g in policy.groups},
        probes=tuple(probes),
        uncovered=tuple(c for c in SelftestCategory if c.value not in covered),
        slot_filled=slot_warning(policy, slot.sizes) is None,
        slot_lists=tuple(licensed_lists(policy)),
        pages={f"/{name}": page for name, page in pages.items()},
    )


def _sample(loaded: LoadedPolicy, lists: Sequence[str], count: int) -> list[str]:
    """The first `count` entries the lists name inline or in their plain list files, full host names before bare
    top-level domains (`xxx` becomes `www.xxx`). Imported UT1 categories are not read: the named lists suffice to
    show a category is applied."""
    names: list[str] = []
    for name in lists:
        source = loaded.policy.lists[name]
        names += source.domains
        for file in source.files:
            names += read_domain_file(loaded.resolve(file)).entries
    hosts = [n for n in names if "." in n] + [f"www.{n}" for n in names if "." not in n]
    return hosts[:count]


def _read_data(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SelftestDataError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise SelftestDataError(f"{path}: not a map of expect and known_good")
    expect, good = data.get("expect") or {}, data.get("known_good") or {}
    if not all(v in Expect.__members__.values() for v in expect.values()):
        raise SelftestDataError(f"{path}: expect: each group is 'block' or 'filter'")
    bad_categories = set(good) - {c.value for c in SelftestCategory}
    if bad_categories:
        raise SelftestDataError(f"{path}: known_good: unknown category {sorted(bad_categories)[0]!r}")
    return {"expect": expect, "known_good": good}
