"""Checks that need the whole policy: names that must refer to a defined group or list, files that must exist.

They read the raw YAML data rather than the validated model, so a policy with both a field error and an
unknown name reports both at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gateway.policy.alerts_model import ILLEGAL_CATEGORIES, PERSON_CATEGORIES

Loc = tuple[str | int, ...]


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _sequence(value: Any) -> list:
    return value if isinstance(value, list) else []


def reference_problems(data: Any, base_dir: Path) -> Iterator[tuple[Loc, str]]:
    data = _mapping(data)
    groups = {str(g) for g in _mapping(data.get("groups"))}
    lists = _mapping(data.get("lists"))

    def group(loc: Loc, name: Any) -> Iterator[tuple[Loc, str]]:
        if isinstance(name, str) and groups and name not in groups:
            yield loc, f"unknown group {name!r} (groups: {', '.join(sorted(groups))})"

    def listed(loc: Loc, name: Any) -> Iterator[tuple[Loc, str]]:
        if isinstance(name, str) and name not in lists:
            yield loc, f"unknown list {name!r} (lists: {', '.join(sorted(lists)) or 'none'})"

    illegal = {name for name in _sequence(data.get("illegal")) if isinstance(name, str)}
    unliftable = {name for name, source in lists.items() if _mapping(source).get("unliftable") is True}

    def liftable(loc: Loc, name: Any) -> Iterator[tuple[Loc, str]]:
        if name in illegal:
            yield loc, f"list {name!r} is in the illegal-content slot: no exception or allowing rule can lift it"
        elif name in unliftable:
            yield loc, f"list {name!r} is marked unliftable: no exception or allowing rule can lift it"

    if "default_group" in data:
        yield from group(("default_group",), data["default_group"])
    for i, network in enumerate(_sequence(data.get("networks"))):
        yield from group(("networks", i, "group"), _mapping(network).get("group"))
    for j, name in enumerate(_sequence(data.get("illegal"))):
        yield from listed(("illegal", j), name)
    for j, name in enumerate(_sequence(_mapping(data.get("never_intercept")).get("lists"))):
        yield from listed(("never_intercept", "lists", j), name)
    for section in ("rules", "exceptions"):
        seen: set[str] = set()
        for i, item in enumerate(_sequence(data.get(section))):
            item = _mapping(item)
            ident = item.get("id")
            if isinstance(ident, str):
                if ident in seen:
                    yield (section, i, "id"), f"duplicate id {ident!r}"
                seen.add(ident)
            for j, name in enumerate(_sequence(item.get("groups"))):
                yield from group((section, i, "groups", j), name)
            for j, name in enumerate(_sequence(item.get("lists"))):
                yield from listed((section, i, "lists", j), name)
                if isinstance(name, str) and (section == "exceptions" or item.get("action") in ("allow", "flag")):
                    yield from liftable((section, i, "lists", j), name)
    yield from expect_problems(data, group)
    yield from _service_groups(data, group)
    yield from _content_problems(data, groups, base_dir)
    yield from _reports_problems(data, lists, illegal)
    yield from _alerts_problems(data, lists)
    yield from _circumvention_problems(data, group, listed, base_dir)
    # A misspelt list here would leave uploads to that service unchecked without a word.
    for j, name in enumerate(_sequence(_mapping(data.get("uploads")).get("lists"))):
        yield from listed(("uploads", "lists", j), name)
    for name, source in lists.items():
        for field in ("files", "url_files"):
            for j, file in enumerate(_sequence(_mapping(source).get(field))):
                if isinstance(file, str) and not (base_dir / file).is_file():
                    yield ("lists", name, field, j), f"list file not found: {base_dir / file}"


def expect_problems(data: dict, group: Callable[[Loc, Any], Iterator[tuple[Loc, str]]]) -> Iterator[tuple[Loc, str]]:
    """An expected decision must name a group the policy defines."""
    for i, case in enumerate(_sequence(data.get("expect"))):
        yield from group(("expect", i, "group"), _mapping(case).get("group"))


def _content_problems(data: dict, groups: set[str], base_dir: Path) -> Iterator[tuple[Loc, str]]:
    """Groups the content thresholds name must exist; the phrase files it names must be there."""
    content = _mapping(data.get("content"))
    for table in ("page_thresholds", "search_thresholds"):
        for name in _mapping(_mapping(content.get(table)).get("groups")):
            if groups and name not in groups:
                message = f"unknown group {name!r} (groups: {', '.join(sorted(groups))})"
                yield ("content", table, "groups", name), message
    files: list[tuple[Loc, Any]] = [(("content", field, j), f) for field in ("context", "misspellings")
                                    for j, f in enumerate(_sequence(content.get(field)))]  # fmt: skip
    for name, category in _mapping(content.get("categories")).items():
        for field in ("phrases", "search_terms"):
            files += [(("content", "categories", name, field, j), f)
                      for j, f in enumerate(_sequence(_mapping(category).get(field)))]  # fmt: skip
    for loc, file in files:
        if isinstance(file, str) and not (base_dir / file).is_file():
            yield loc, f"phrase file not found: {base_dir / file}"


def _reports_problems(data: dict, lists: dict, illegal: set[str]) -> Iterator[tuple[Loc, str]]:
    """The one-click block list must be a list the policy defines, outside the illegal-content slot (a school's own
    block is not a police-assessed list), that a rule blocks: else a one-click block would block nothing."""
    name = _mapping(data.get("reports")).get("block_list")
    if not isinstance(name, str):
        return
    loc: Loc = ("reports", "block_list")
    if name not in lists:
        yield loc, f"unknown list {name!r} (lists: {', '.join(sorted(lists)) or 'none'})"
    elif name in illegal:
        yield loc, f"list {name!r} is in the illegal-content slot: the school's own blocks need a list of their own"
    elif not any(name in _sequence(_mapping(rule).get("lists")) and _mapping(rule).get("action") == "block"
                 for rule in _sequence(data.get("rules"))):  # fmt: skip
        yield loc, f"no rule blocks the list {name!r}: a one-click block would block nothing"


def _alerts_problems(data: dict, lists: dict) -> Iterator[tuple[Loc, str]]:
    """A high-risk category nothing ever reports under (a typo: "self-harm") would silently never alert."""
    known = {*_mapping(_mapping(data.get("content")).get("categories")), *lists, *ILLEGAL_CATEGORIES,
             *PERSON_CATEGORIES}  # fmt: skip
    alerts = _mapping(_mapping(data.get("reports")).get("alerts"))
    for j, name in enumerate(_sequence(alerts.get("high_risk"))):
        if isinstance(name, str) and name not in known:
            yield ("reports", "alerts", "high_risk", j), (
                f"{name!r} is not a category anything reports under (content categories, lists, "
                f"{', '.join(ILLEGAL_CATEGORIES)}, or what \"Report this page\" offers)")


def _circumvention_problems(data: dict, group: Callable[[Loc, Any], Iterator[tuple[Loc, str]]],
                            listed: Callable[[Loc, Any], Iterator[tuple[Loc, str]]],
                            base_dir: Path) -> Iterator[tuple[Loc, str]]:  # fmt: skip
    """The groups kept from bare addresses and the workaround lists must exist; so must the User-Agent files."""
    section = _mapping(data.get("circumvention"))
    for j, name in enumerate(_sequence(_mapping(section.get("ip_literal")).get("groups"))):
        yield from group(("circumvention", "ip_literal", "groups", j), name)
    for j, name in enumerate(_sequence(section.get("workaround_lists"))):
        yield from listed(("circumvention", "workaround_lists", j), name)
    for j, file in enumerate(_sequence(section.get("user_agent_files"))):
        if isinstance(file, str) and not (base_dir / file).is_file():
            yield ("circumvention", "user_agent_files", j), f"user-agent file not found: {base_dir / file}"


def _service_groups(data: dict, group: Callable[[Loc, Any], Iterator[tuple[Loc, str]]]) -> Iterator[tuple[Loc, str]]:
    """Safe search, the sign-in locks and the age gate name groups the policy must define: a misspelt one would
    leave its pupils unprotected without a word."""
    for name in _mapping(_mapping(data.get("safe_search")).get("groups")):
        yield from group(("safe_search", "groups", name), name)
    for lock in ("google_sign_in", "microsoft_sign_in"):
        for j, name in enumerate(_sequence(_mapping(_mapping(data.get("services")).get(lock)).get("groups"))):
            yield from group(("services", lock, "groups", j), name)
    for j, name in enumerate(_sequence(_mapping(data.get("age_limits")).get("groups"))):
        yield from group(("age_limits", "groups", j), name)
