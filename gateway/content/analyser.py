"""Scoring page text and search terms for one person: the finding, and allow, flag or block by their thresholds.

Pure: the proxy hands in text it has decoded and acts on the finding.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from gateway.content.findings import ContentFinding
from gateway.content.matcher import EXCERPT_CHARS, PhraseMatcher, Tally
from gateway.content.normalise import normalise_page, normalise_words, strip_markup
from gateway.decisions.types import Action
from gateway.identity.types import Identity
from gateway.policy.content_model import Thresholds, ThresholdTable

# Response types whose bodies are text a person reads. A response with no type is analysed too: a browser sniffs
# it, so leaving the type out must not be a way round the analysis.
_TEXT_TYPES = frozenset({"text/html", "text/plain", "application/xhtml+xml", "application/json", "text/xml",
                         "application/xml", "application/rss+xml", "application/atom+xml"})  # fmt: skip
_STRUCTURED_SUFFIXES = ("+json", "+xml")

# Normalised characters carried from one streamed piece to the next, so a phrase split between them still matches.
OVERLAP_CHARS = 256
# A streamed piece is cut after its last whole tag and word; past this much held back, it is cut anyway.
MAX_HELD_BACK = 256 * 1024
_DROPPED_TAG = re.compile(r"<(/?)(script|style|noscript|template|svg)\b", re.I)


@dataclass(frozen=True, slots=True)
class ContentAnalyser:
    max_bytes: int
    pages: PhraseMatcher
    searches: PhraseMatcher
    page_thresholds: ThresholdTable
    search_thresholds: ThresholdTable
    high_risk: frozenset[str]
    # Category -> "block" or "flag": what a search over the block threshold does.
    search_actions: Mapping[str, str]

    def wants(self, content_type: str | None, length: int | None) -> bool:
        """Whether a response body is text to analyse whole (before the browser sees it): a text type, and no
        larger than `max_bytes` when its length is known. Larger text goes through `scanner`."""
        if length is not None and length > self.max_bytes:
            return False
        if content_type is None or not content_type.strip():
            return True
        media = content_type.split(";", 1)[0].strip().lower()
        return media in _TEXT_TYPES or media.endswith(_STRUCTURED_SUFFIXES)

    def analyse_page(self, text: str, identity: Identity) -> ContentFinding:
        tally = Tally(self.pages)
        tally.add_page(text)
        finding = self.page_finding(tally, identity)
        if finding.matches:
            # The page's own words read better on a report than the normalised ones, when the phrase is there as
            # written (it may not be: "k1ll" was found as "kill").
            excerpt = readable_excerpt(strip_markup(text), finding.matches[0])
            if excerpt:
                finding = replace(finding, excerpt=excerpt)
        return finding

    def analyse_search(self, terms: str, identity: Identity) -> ContentFinding:
        tally = Tally(self.searches)
        tally.add(normalise_words(terms))
        thresholds = self.search_thresholds.resolve(identity.group, identity.year_group)
        finding = self._finding("search", tally, thresholds)
        if finding.action is Action.BLOCK and self.search_actions.get(finding.category or "") == "flag":
            finding = replace(finding, action=Action.FLAG)
        # The officer needs the search as typed, not an excerpt of normalised text.
        return replace(finding, excerpt=terms[:EXCERPT_CHARS])

    def scanner(self, identity: Identity) -> PageScanner:
        return PageScanner(self, identity)

    def page_finding(self, tally: Tally, identity: Identity) -> ContentFinding:
        return self._finding("page", tally, self.page_thresholds.resolve(identity.group, identity.year_group))

    def _finding(self, kind: str, tally: Tally, thresholds: Thresholds) -> ContentFinding:
        scores = tally.scores()
        if not scores:
            return ContentFinding(kind, Action.ALLOW, None, 0, (), "", False)
        # Strongest category; on a tie, the one the officer is alerted about.
        category = max(scores, key=lambda name: (scores[name], name in self.high_risk))
        score = scores[category]
        if score >= thresholds.block:
            action = Action.BLOCK
        elif score >= thresholds.flag:
            action = Action.FLAG
        else:
            action = Action.ALLOW
        matches, excerpt = tally.evidence(category)
        return ContentFinding(kind, action, category, score, matches, excerpt, category in self.high_risk)


class PageScanner:
    """Scores text streamed past in pieces (a large page), never holding more than a piece and a small tail."""

    def __init__(self, analyser: ContentAnalyser, identity: Identity) -> None:
        self.analyser = analyser
        self.identity = identity
        self.tally = Tally(analyser.pages)
        self.held = ""
        self.overlap = " "
        self.blocked = False

    def feed(self, text_chunk: str) -> ContentFinding | None:
        """Score one more piece; a BLOCK finding the first time the page crosses the block threshold, else None."""
        text = self.held + text_chunk
        cut = _safe_cut(text)
        self.held = text[cut:]
        self._score(text[:cut])
        if self.blocked:
            return None
        finding = self.analyser.page_finding(self.tally, self.identity)
        if finding.action is Action.BLOCK:
            self.blocked = True
            return finding
        return None

    def finish(self) -> ContentFinding:
        self._score(self.held)
        self.held = ""
        return self.analyser.page_finding(self.tally, self.identity)

    def _score(self, raw: str) -> None:
        if not raw:
            return
        words = normalise_page(raw)
        # The previous piece's tail ends in a space and this piece starts with one: join them with one space.
        text = self.overlap + words[1:]
        self.tally.add(text, skip_before=len(self.overlap))
        tail = text[-OVERLAP_CHARS:]
        # Start the carried tail at a word boundary, so its first word is whole.
        self.overlap = tail[tail.find(" ") :] if len(text) > OVERLAP_CHARS else text


def _safe_cut(text: str) -> int:
    """Where to cut streamed text: at white space that is page text, not inside a tag or a dropped element
    (script, style), so no word, tag or script is split. 0 holds it all back for now."""
    if len(text) > MAX_HELD_BACK:
        return len(text) - 1024
    dropped = _dropped_spans(text)
    pos = len(text)
    while True:
        # After a tag may be inside a word ("p<b></b>orn"): only white space separates words for certain.
        space = max(text.rfind(" ", 0, pos), text.rfind("\n", 0, pos), text.rfind("\t", 0, pos))
        if space <= 0:
            return 0
        tag = text.rfind("<", 0, space)
        if tag > text.rfind(">", 0, space):
            pos = tag
            continue
        inside = next((start for start, end in dropped if start < space < end), None)
        if inside is None:
            return space
        pos = inside


def _dropped_spans(text: str) -> list[tuple[int, int]]:
    """Where each script, style … element runs, from its opening tag to the end of its closing one (or the end of
    the text, while it is still open)."""
    spans: list[tuple[int, int]] = []
    opened: re.Match[str] | None = None
    for tag in _DROPPED_TAG.finditer(text):
        if opened is None and not tag.group(1):
            opened = tag
        elif opened is not None and tag.group(1) and tag.group(2).lower() == opened.group(2).lower():
            spans.append((opened.start(), tag.end()))
            opened = None
    if opened is not None:
        spans.append((opened.start(), len(text)))
    return spans


def readable_excerpt(visible: str, phrase: str) -> str | None:
    """Up to EXCERPT_CHARS of the page's text around the first place `phrase` is written as the list writes it."""
    words = phrase.split()
    found = re.search(r"(?<!\w)" + r"\W+".join(re.escape(word) for word in words) + r"(?!\w)", visible, re.I)
    if found is None:
        return None
    margin = max(0, (EXCERPT_CHARS - (found.end() - found.start())) // 2)
    around = visible[max(0, found.start() - margin) : found.end() + margin]
    return " ".join(around.split())[:EXCERPT_CHARS]
