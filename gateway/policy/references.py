"""Checks that need the whole policy: names that must refer to a defined group or list, files that must exist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from gateway.policy.model import Policy

Loc = tuple[str | int, ...]


def reference_problems(policy: Policy, base_dir: Path) -> Iterator[tuple[Loc, str]]:
    groups = set(policy.groups)
    lists = set(policy.lists)

    def group(loc: Loc, name: str) -> Iterator[tuple[Loc, str]]:
        if name not in groups:
            yield loc, f"unknown group {name!r} (groups: {', '.join(sorted(groups))})"

    def listed(loc: Loc, name: str) -> Iterator[tuple[Loc, str]]:
        if name not in lists:
            yield loc, f"unknown list {name!r} (lists: {', '.join(sorted(lists)) or 'none'})"

    yield from group(("default_group",), policy.default_group)
    for i, network in enumerate(policy.networks):
        yield from group(("networks", i, "group"), network.group)
    for j, name in enumerate(policy.illegal):
        yield from listed(("illegal", j), name)
    for j, name in enumerate(policy.never_intercept.lists):
        yield from listed(("never_intercept", "lists", j), name)
    for section, items in (("rules", policy.rules), ("exceptions", policy.exceptions)):
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.id in seen:
                yield (section, i, "id"), f"duplicate id {item.id!r}"
            seen.add(item.id)
            for j, name in enumerate(item.groups or []):
                yield from group((section, i, "groups", j), name)
            for j, name in enumerate(item.lists):
                yield from listed((section, i, "lists", j), name)
    for name, source in policy.lists.items():
        for field in ("files", "url_files"):
            for j, file in enumerate(getattr(source, field)):
                if not (base_dir / file).is_file():
                    yield ("lists", name, field, j), f"list file not found: {base_dir / file}"
