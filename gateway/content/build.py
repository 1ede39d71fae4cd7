"""Build a policy's content analyser from its `content` section and data files; every bad line is a problem."""

from __future__ import annotations

from pathlib import Path

from gateway.content.analyser import ContentAnalyser
from gateway.content.matcher import PhraseMatcher
from gateway.content.phrase_files import Phrase, read_misspelling_file, read_phrase_file
from gateway.lists.files import BadLine
from gateway.policy.loader import LoadedPolicy, PolicyError, Problem
from gateway.policy.references import Loc

# Bad lines named per file; the rest are counted.
MAX_NAMED_BAD_LINES = 10


def build_analyser(loaded: LoadedPolicy) -> ContentAnalyser | None:
    """The analyser, or None when content analysis is off; PolicyError naming each bad file line."""
    content = loaded.policy.content
    if not content.enabled:
        return None
    problems: list[Problem] = []

    def phrases(file: str, loc: Loc) -> tuple[Phrase, ...]:
        path = loaded.resolve(file)
        try:
            parsed = read_phrase_file(path)
        except OSError as exc:
            problems.append(loaded.problem(loc, f"cannot read phrase file {path}: {exc.strerror}"))
            return ()
        _report(problems, loaded, path, loc, parsed.bad)
        return parsed.phrases

    misspellings: dict[str, set[str]] = {}
    for j, file in enumerate(content.misspellings):
        path = loaded.resolve(file)
        try:
            table, bad = read_misspelling_file(path)
        except OSError as exc:
            problems.append(loaded.problem(("content", "misspellings", j), f"cannot read {path}: {exc.strerror}"))
            continue
        _report(problems, loaded, path, ("content", "misspellings", j), bad)
        for right, wrong in table.items():
            misspellings.setdefault(right, set()).update(wrong)

    context = [(None, p) for j, file in enumerate(content.context) for p in phrases(file, ("content", "context", j))]
    page: list[tuple[str | None, Phrase]] = list(context)
    search: list[tuple[str | None, Phrase]] = []
    for name, category in content.categories.items():
        for j, file in enumerate(category.phrases):
            page += [(name, p) for p in phrases(file, ("content", "categories", name, "phrases", j))]
        for j, file in enumerate(category.search_terms):
            search += [(name, p) for p in phrases(file, ("content", "categories", name, "search_terms", j))]
    if problems:
        raise PolicyError(problems)
    spellings = {right: tuple(sorted(wrong)) for right, wrong in misspellings.items()}
    return ContentAnalyser(
        max_bytes=content.max_bytes,
        pages=PhraseMatcher(page, spellings),
        searches=PhraseMatcher(search, spellings),
        page_thresholds=content.page_thresholds,
        search_thresholds=content.search_thresholds,
        # One list of what alerts at once, for findings, flagged lists and people's reports alike.
        high_risk=frozenset(loaded.policy.reports.alerts.high_risk),
        search_actions={name: category.search for name, category in content.categories.items()},
    )


def _report(problems: list[Problem], loaded: LoadedPolicy, path: Path, loc: Loc, bad: tuple[BadLine, ...]) -> None:
    if not bad:
        return
    field_name = ".".join(str(part) for part in loc)
    for line in bad[:MAX_NAMED_BAD_LINES]:
        problems.append(Problem(path, line.line, field_name, f"{line.reason}: {line.text!r}"))
    if len(bad) > MAX_NAMED_BAD_LINES:
        problems.append(Problem(path, None, field_name, f"{len(bad) - MAX_NAMED_BAD_LINES:,} more bad lines"))
    problems.append(loaded.problem(loc, f"{path} is not a valid phrase file ({len(bad):,} bad lines)"))
