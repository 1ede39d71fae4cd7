"""Real-time content analysis settings: the phrase lists per category, who is alerted on, and the thresholds.

Phrase and search-term files are data under `policies/content/` (their format is described at the top of each);
the model only names them, like list files, so a school can add a language without touching the policy logic.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from gateway.policy.model_base import Name, Strict

# Searches and pages larger than this are still analysed, but streamed: scanned as they pass, never held back.
DEFAULT_MAX_BYTES = 2 * 1024 * 1024

Score = Annotated[int, Field(ge=1, le=10_000)]


class Thresholds(Strict):
    """A category score at or above `flag` reports the page to the e-safety officer; at or above `block`, blocks it."""

    flag: Score
    block: Score

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.block < self.flag:
            raise ValueError(f"block ({self.block}) is below flag ({self.flag})")
        return self


class ThresholdTable(Strict):
    """Thresholds for everyone, then per group, then per year group: the most specific one applies."""

    default: Thresholds
    groups: dict[Name, Thresholds] = {}
    # Younger pupils get lower (stricter) thresholds.
    year_groups: dict[Annotated[int, Field(ge=0, le=14)], Thresholds] = {}

    def resolve(self, group: str, year_group: int | None) -> Thresholds:
        if year_group is not None and year_group in self.year_groups:
            return self.year_groups[year_group]
        return self.groups.get(group, self.default)


class ContentCategory(Strict):
    # Weighted phrase files for page text (one per language), relative to the policy file.
    phrases: list[str] = []
    # Weighted term files for search terms, scored with `search_thresholds`.
    search_terms: list[str] = []
    # A search over the block threshold is blocked ("block") or only reported ("flag").
    search: Literal["block", "flag"] = "block"


class ContentAnalysis(Strict):
    enabled: bool = False
    # Text bodies up to this size are held and analysed before the browser sees them; larger ones are scanned as
    # they stream past (and cut off once they cross the block threshold). Images, video and downloads never wait.
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1024, le=64 * 1024 * 1024)
    categories: dict[Name, ContentCategory] = {}
    # Phrases that lower every category's score when they appear (negative weights: "lesson", "helpline" …), so
    # an educational page about a sensitive topic is not blocked.
    context: list[str] = []
    # Files of `misspelling correct-spelling` pairs; each phrase also matches its common misspellings.
    misspellings: list[str] = []
    page_thresholds: ThresholdTable = ThresholdTable(default=Thresholds(flag=6, block=12))
    # Searches are a few words: one strong term is enough.
    search_thresholds: ThresholdTable = ThresholdTable(default=Thresholds(flag=3, block=5))

    @property
    def data_files(self) -> tuple[str, ...]:
        """Every phrase, term and misspelling file, relative to the policy file."""
        per_category = [f for c in self.categories.values() for f in (*c.phrases, *c.search_terms)]
        return (*self.context, *self.misspellings, *per_category)
