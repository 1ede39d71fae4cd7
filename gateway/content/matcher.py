"""One automaton over every normalised phrase, and the tally that turns its hits into scores.

A loop of regular expressions costs one pass over the page per phrase; the automaton makes one pass whatever the
number of phrases (see `bench/content_matcher_bench.py`). Phrases are stored padded with spaces, and the text is
normalised to words between single spaces, so only whole words match ("class" does not contain "ass"). The
automaton is the C one beside the normaliser (`gateway/content/_scan.c`): a trie of the phrases walked from each
word start, since a padded phrase can start nowhere else, which finds every match an Aho-Corasick automaton would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# The C module comes by way of the normaliser, which loads it (saying how to build it when it is missing).
from gateway.content.normalise import _scan, spelling_variants
from gateway.content.phrase_files import Phrase

# A phrase counts at most this many times, so one word repeated down a long page does not make it harmful.
MAX_REPEATS = 3
MAX_MATCHES = 20
# Mitigating words cannot take a score below 1/MITIGATION_FLOOR of it: pasting "lesson plan" and "helpline" into a
# pornographic page must not unblock it.
MITIGATION_FLOOR = 4
EXCERPT_CHARS = 300


@dataclass(frozen=True, slots=True)
class Entry:
    # None for context phrases, which lower the score of every category.
    category: str | None
    weight: int
    text: str


class PhraseMatcher:
    def __init__(self, phrases: Iterable[tuple[str | None, Phrase]],
                 misspellings: Mapping[str, tuple[str, ...]]) -> None:  # fmt: skip
        self.entries: list[Entry] = []
        by_pattern: dict[str, list[int]] = {}
        for category, phrase in phrases:
            entry_id = len(self.entries)
            self.entries.append(Entry(category, phrase.weight, phrase.text))
            for variant in spelling_variants(phrase.normalised, misspellings):
                by_pattern.setdefault(f" {variant} ", []).append(entry_id)
        # Pattern i (padded with spaces) counts for the entries ids[i].
        self.pattern_texts = list(by_pattern)
        self.ids = [tuple(ids) for ids in by_pattern.values()]
        self.automaton = _scan.Automaton(self.pattern_texts)
        self.patterns = len(self.pattern_texts)

    def hits(self, text: str) -> Iterable[tuple[int, int, tuple[int, ...]]]:
        """(start, end) of each whole-word match in normalised text, with the entries it counts for."""
        ids = self.ids
        for start, end, pattern in self.automaton.hits(text):
            yield start, end, ids[pattern]

    def page_hits(self, page: str) -> tuple[str, list[tuple[int, int, tuple[int, ...]]]]:
        """A page (with its markup) normalised and matched in one call: its words (empty when nothing matched,
        which is most pages: they are never made a str then) and the hits in them, as `hits` gives them."""
        words, found = self.automaton.scan_page(page)
        ids = self.ids
        return words or "", [(start, end, ids[pattern]) for start, end, pattern in found]


@dataclass(slots=True)
class Tally:
    """Counts per phrase over one page (or one streamed page, piece by piece) and the scores they make."""

    matcher: PhraseMatcher
    counts: dict[int, int] = field(default_factory=dict)
    # The text around the first sighting of each phrase, for the report's excerpt.
    excerpts: dict[int, str] = field(default_factory=dict)

    def add(self, text: str, skip_before: int = 0) -> None:
        """Count the matches in normalised `text` that end after `skip_before` (the part before was counted
        already, as the end of the previous piece)."""
        self._count(text, self.matcher.hits(text), skip_before)

    def add_page(self, page: str) -> None:
        """Count the matches in a whole page, markup and all."""
        self._count(*self.matcher.page_hits(page), 0)

    def _count(self, text: str, hits: Iterable[tuple[int, int, tuple[int, ...]]], skip_before: int) -> None:
        # A phrase inside a longer one counts only as the longer one: "go kill yourself" is not also "kill
        # yourself", and "suicide prevention" is not also "suicide".
        reach = -1
        for start, end, ids in sorted(hits, key=lambda hit: (hit[0], -hit[1])):
            if end <= reach:
                continue
            reach = end
            if end <= skip_before:
                continue
            for entry_id in ids:
                seen = self.counts.get(entry_id, 0)
                if seen < MAX_REPEATS:
                    self.counts[entry_id] = seen + 1
                if not seen:
                    self.excerpts[entry_id] = _excerpt(text, start, end)

    def scores(self) -> dict[str, int]:
        """Each matched category's score: its phrases' weights, lowered by mitigating context (its own negative
        phrases and the shared context ones), but never below a quarter of what its phrases raised."""
        raised: dict[str, int] = {}
        lowered: dict[str, int] = {}
        context = 0
        entries = self.matcher.entries
        for entry_id, count in self.counts.items():
            entry = entries[entry_id]
            if entry.category is None:
                context += entry.weight * count
            elif entry.weight > 0:
                raised[entry.category] = raised.get(entry.category, 0) + entry.weight * count
            else:
                lowered[entry.category] = lowered.get(entry.category, 0) + entry.weight * count
        return {
            category: max(score // MITIGATION_FLOOR, score + lowered.get(category, 0) + context)
            for category, score in raised.items()
        }

    def evidence(self, category: str) -> tuple[tuple[str, ...], str]:
        """The category's phrases that raised its score, strongest first, and the excerpt of the strongest."""
        entries = self.matcher.entries
        ranked = sorted(
            (entry_id for entry_id in self.counts if entries[entry_id].category == category
             and entries[entry_id].weight > 0),
            key=lambda entry_id: -entries[entry_id].weight * self.counts[entry_id],
        )  # fmt: skip
        matches = tuple(dict.fromkeys(entries[entry_id].text for entry_id in ranked))[:MAX_MATCHES]
        return matches, self.excerpts[ranked[0]] if ranked else ""


def _excerpt(text: str, start: int, end: int) -> str:
    margin = max(0, (EXCERPT_CHARS - (end - start)) // 2)
    return text[max(0, start - margin) : end + margin].strip()[:EXCERPT_CHARS]
