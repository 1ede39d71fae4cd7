"""The entries of every list a policy names, read strictly: a list file with any bad line refuses the policy.

A list file that holds binary content or lines that are neither domains nor comments is corrupt (a truncated
download, a file overwritten by mistake or on purpose), and its good lines are not the list the school meant:
loading them would quietly switch most of the list off. Every such line is named with its file and line.

Big files (UT1 categories) are read through their compiled cache, which records how many bad lines the file had
when it was compiled: a valid file is checked once, and only a bad one is parsed again to name its lines.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from gateway.lists.cache import CompiledList, compile_list, load_compiled
from gateway.lists.files import ParsedList, read_domain_file, read_url_file
from gateway.lists.index import DomainSource
from gateway.policy.loader import LoadedPolicy, Problem
from gateway.policy.model import ListSource, is_test_domain
from gateway.policy.references import Loc

# Bad lines named per file; the rest are counted.
MAX_NAMED_BAD_LINES = 10


@dataclass(slots=True)
class ListEntries:
    """What the lists of one policy hold, and what is wrong with them."""

    domains: dict[str, list[DomainSource]] = field(default_factory=dict)
    urls: dict[str, list[str]] = field(default_factory=dict)
    # Entries per list (domains and URL prefixes, counted per source), for the shrink check and the illegal slot.
    sizes: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # UT1 categories a list names that are not imported yet.
    missing: set[str] = field(default_factory=set)


def read_lists(loaded: LoadedPolicy, only: Collection[str] | None = None) -> ListEntries:
    """Every list of the policy, or those named in `only`."""
    found = ListEntries()
    imports = loaded.resolve(loaded.policy.imports)
    for name, source in loaded.policy.lists.items():
        if only is None or name in only:
            _read_list(loaded, name, source, imports, found)
    return found


def _read_list(loaded: LoadedPolicy, name: str, source: ListSource, imports: Path, found: ListEntries) -> None:
    domains: list[DomainSource] = []
    urls: list[str] = []
    size = 0

    def domain_file(path: Path, loc: Loc) -> None:
        nonlocal size
        if source.test_entries:
            parsed = read_domain_file(path)
            if _report(loaded, found, path, loc, parsed.bad_count, parsed):
                return
            real = [entry for entry in parsed.entries if not is_test_domain(entry)]
            if real:
                found.problems.append(loaded.problem(loc, f"{path}: a list of test entries may hold only names "
                                                          f"under .test, not {real[0]!r}"))  # fmt: skip
                return
            domains.append(parsed.entries)
            size += len(parsed.entries)
            return
        compiled = load_compiled(path)
        if compiled.bad_count and not compiled.bad:
            # Opened from its cache, which counts the bad lines but does not keep them: parse again to name them.
            compiled = compile_list(path, save=False)
        if _report(loaded, found, path, loc, compiled.bad_count, compiled):
            return
        domains.append(compiled.hashes)
        size += len(compiled.hashes)

    def url_file(path: Path, loc: Loc) -> None:
        nonlocal size
        parsed = read_url_file(path)
        if _report(loaded, found, path, loc, parsed.bad_count, parsed):
            return
        if source.test_entries and not all(is_test_domain(entry.partition("/")[0]) for entry in parsed.entries):
            message = f"{path}: a list of test entries may hold only names under .test"
            found.problems.append(loaded.problem(loc, message))
            return
        urls.extend(parsed.entries)
        size += len(parsed.entries)

    for j, file in enumerate(source.files):
        domain_file(loaded.resolve(file), ("lists", name, "files", j))
    for j, file in enumerate(source.url_files):
        url_file(loaded.resolve(file), ("lists", name, "url_files", j))
    if source.domains:
        domains.append(source.domains)
        size += len(source.domains)
    for j, category in enumerate(source.ut1):
        folder = imports / category
        if not (folder / "domains").is_file():
            found.missing.add(category)
            continue
        domain_file(folder / "domains", ("lists", name, "ut1", j))
        if (folder / "urls").is_file():
            url_file(folder / "urls", ("lists", name, "ut1", j))
    found.domains[name] = domains
    found.urls[name] = urls
    found.sizes[name] = size


def _report(loaded: LoadedPolicy, found: ListEntries, path: Path, loc: Loc, bad_count: int,
            parsed: ParsedList | CompiledList) -> bool:  # fmt: skip
    """Add a problem for each bad line of a list file (up to a limit); True when there were any."""
    if not bad_count:
        return False
    field_name = ".".join(str(part) for part in loc)
    for bad in parsed.bad[:MAX_NAMED_BAD_LINES]:
        found.problems.append(Problem(path, bad.line, field_name, f"{bad.reason}: {bad.text[:80]!r}"))
    hidden = bad_count - min(len(parsed.bad), MAX_NAMED_BAD_LINES)
    if hidden:
        found.problems.append(Problem(path, None, field_name, f"{hidden:,} more bad lines; the list file is refused"))
    found.problems.append(loaded.problem(loc, f"{path} is not a valid list file ({bad_count:,} bad lines)"))
    return True
