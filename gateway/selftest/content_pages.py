"""Pages for checking real-time content analysis: for each category the policy analyses, a page of that category's
strongest phrases (terms, never instructions), just enough of them that the policy blocks the page for every
group tested. The self-test's own server serves them on an address no list names, so only the page's words can
block it."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from gateway.content.build import build_analyser
from gateway.content.phrase_files import read_phrase_file
from gateway.decisions.types import Action
from gateway.identity.types import Identity, IdentitySource
from gateway.policy.loader import LoadedPolicy

# An address under the reserved `.test` domain: no list names it and no real site can have it.
HOST = "content-check.selftest.test"
# Phrases per page at most: a category whose phrases cannot reach a group's block threshold shows as such.
MAX_PHRASES = 60


def harmful_pages(loaded: LoadedPolicy, groups: Sequence[str], year_group: int | None = None) -> Mapping[str, str]:
    """Page HTML by category (the path it is served at is `/<category>`); empty when content analysis is off."""
    analyser = build_analyser(loaded)
    if analyser is None:
        return {}
    people = [Identity(group=group, source=IdentitySource.SELFTEST, year_group=year_group) for group in groups]
    pages: dict[str, str] = {}
    for name, category in loaded.policy.content.categories.items():
        if not category.phrases:
            continue
        phrases = sorted((p for p in read_phrase_file(loaded.resolve(category.phrases[0])).phrases if p.weight > 0),
                         key=lambda p: -p.weight)  # fmt: skip
        words: list[str] = []
        for phrase in phrases[:MAX_PHRASES]:
            words.append(phrase.text)
            page = _page(words)
            if all(analyser.analyse_page(page, person).action is Action.BLOCK for person in people):
                break
        if words:
            pages[name] = _page(words)
    return pages


def _page(phrases: Sequence[str]) -> str:
    body = "".join(f"<p>{html.escape(phrase)}.</p>" for phrase in phrases)
    return f"<!doctype html><html><head><title>Forum</title></head><body>{body}</body></html>"
