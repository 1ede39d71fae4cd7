"""A site's policy over a trust-wide base: `extends: ../trust/base.yaml` (relative to the file that says it).

The merge, applied from the furthest base to the site (a base may extend another; a cycle is refused):
- a map (a section like `school`, `groups`, `lists`, `content`) merges key by key, the site's value winning;
- a list of maps (`rules`, `exceptions`, `networks`, `expect` …) is the site's items, then the base's: the site's
  rules come first, so where both match a request the site's decides;
- any other value (a scalar, a list of plain values such as `illegal` or a rule's `groups`) is the site's,
  replacing the base's.

Files a base names (list files, `imports`, phrase files …) stay relative to the base, not to the site. Every
merged key and item keeps the file and line it came from, so an error names whichever file is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.policy.references import Loc

KEY = "extends"
MAX_DEPTH = 8
# Fields holding paths relative to the policy file that names them ("*": any key or index).
PATH_FIELDS: tuple[Loc, ...] = (
    ("imports",),
    ("lists", "*", "files", "*"),
    ("lists", "*", "url_files", "*"),
    ("content", "context", "*"),
    ("content", "misspellings", "*"),
    ("content", "categories", "*", "phrases", "*"),
    ("content", "categories", "*", "search_terms", "*"),
    ("age_limits", "files", "*"),
    ("circumvention", "user_agent_files", "*"),
)

# Where a value came from: its file and line.
Where = dict[Loc, tuple[Path, int]]
Reader = Callable[[Path], tuple[Any, dict[Loc, int]]]


class ExtendsError(Exception):
    def __init__(self, path: Path, line: int | None, message: str) -> None:
        self.path, self.line, self.message = path, line, message
        super().__init__(message)


@dataclass(frozen=True)
class Layered:
    data: Any
    where: Where
    # The site's file first, then each base it extends.
    sources: tuple[Path, ...]


def load_layers(path: Path, data: Any, lines: dict[Loc, int], read: Reader) -> Layered:
    """The policy at `path` (already parsed) merged over every base it extends.

    The site's own file must name its `school.site`: inherited from the base, every school of the trust would
    log under one name and each site's staff would see the others' records."""
    school = data.get("school") if isinstance(data, dict) else None
    if not (isinstance(school, dict) and "site" in school):
        raise ExtendsError(path, lines.get((KEY,)), f"{KEY}: a policy that extends a base names its own school.site "
                                                    "(the trust's records are kept and shown by site)")  # fmt: skip
    return _layered(path, data, lines, read, (path.resolve(),))


def _layered(path: Path, data: Any, lines: dict[Loc, int], read: Reader, chain: tuple[Path, ...]) -> Layered:
    where: Where = {loc: (path, line) for loc, line in lines.items()}
    if not isinstance(data, dict) or KEY not in data:
        return Layered(data, where, chain)
    line = lines.get((KEY,))
    target = data.pop(KEY)
    if not isinstance(target, str) or not target.strip():
        raise ExtendsError(path, line, f"{KEY}: name the base policy file, relative to this one")
    base_path = (path.parent / target).resolve()
    if base_path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, base_path))
        raise ExtendsError(path, line, f"{KEY}: the policies extend each other in a cycle: {cycle}")
    if len(chain) >= MAX_DEPTH:
        raise ExtendsError(path, line, f"{KEY}: more than {MAX_DEPTH} policies extend one another")
    if not base_path.is_file():
        raise ExtendsError(path, line, f"{KEY}: base policy not found: {base_path}")
    base_data, base_lines = read(base_path)
    base = _layered(base_path, base_data, base_lines, read, (*chain, base_path))
    _anchor_paths(base.data, base_path.parent)
    merged, shifts, replaced = merge(base.data, data)
    return Layered(merged, _merge_where(base.where, where, shifts, replaced), base.sources)


def merge(base: Any, site: Any) -> tuple[Any, dict[Loc, int], set[Loc]]:
    """The merged value, where the base's list items moved (list loc -> how far), and the locs where the site's
    value replaced the base's."""
    shifts: dict[Loc, int] = {}
    replaced: set[Loc] = set()
    return _merge(base, site, (), shifts, replaced), shifts, replaced


def _merge(base: Any, site: Any, loc: Loc, shifts: dict[Loc, int], replaced: set[Loc]) -> Any:
    if isinstance(base, dict) and isinstance(site, dict):
        result = dict(base)
        for key, value in site.items():
            result[key] = _merge(base[key], value, (*loc, key), shifts, replaced) if key in base else value
        return result
    if isinstance(base, list) and isinstance(site, list) and _of_maps(base + site):
        shifts[loc] = len(site)
        return site + base
    replaced.add(loc)
    return site


def _of_maps(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(item, dict) for item in items)


def _merge_where(base: Where, site: Where, shifts: dict[Loc, int], replaced: set[Loc]) -> Where:
    merged = dict(site)
    for loc, origin in base.items():
        moved = _moved(loc, shifts, replaced)
        if moved is not None and moved not in merged:
            merged[moved] = origin
    return merged


def _moved(loc: Loc, shifts: dict[Loc, int], replaced: set[Loc]) -> Loc | None:
    """Where a base's loc is in the merged data, or None if the site replaced it."""
    result = list(loc)
    for n in range(len(loc) + 1):
        prefix = loc[:n]
        if prefix in replaced:
            return None
        if n < len(loc) and prefix in shifts and isinstance(loc[n], int):
            result[n] = loc[n] + shifts[prefix]
    return tuple(result)


def _anchor_paths(data: Any, folder: Path) -> None:
    """Make the base's relative file names absolute, so they still name the base's files from the site."""
    for pattern in PATH_FIELDS:
        _anchor(data, pattern, folder)


def _anchor(node: Any, pattern: Loc, folder: Path) -> None:
    head, rest = pattern[0], pattern[1:]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else [head] if head in node else []
    elif isinstance(node, list) and head == "*":
        keys = list(range(len(node)))
    else:
        return
    for key in keys:
        if rest:
            _anchor(node[key], rest, folder)
        elif isinstance(node[key], str):
            node[key] = str(folder / node[key])
