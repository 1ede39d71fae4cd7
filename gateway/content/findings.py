"""What content analysis found on a page or in a search: the value the proxy logs and the store turns into a report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.decisions.types import Action


@dataclass(frozen=True, slots=True)
class ContentFinding:
    # "page" (response text) or "search" (search terms in a URL).
    kind: str
    # ALLOW when under the thresholds, FLAG or BLOCK otherwise.
    action: Action
    # The strongest category, or None when nothing matched.
    category: str | None
    score: int
    # Phrases or terms that matched, as the list writes them (at most 20).
    matches: tuple[str, ...]
    # Up to 300 characters of page text around the strongest match; the terms themselves for searches.
    excerpt: str
    # The category is one the policy alerts on at once.
    high_risk: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "action": self.action.value,
            "category": self.category,
            "score": self.score,
            "matches": list(self.matches),
            "excerpt": self.excerpt,
            "high_risk": self.high_risk,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContentFinding:
        category = data.get("category")
        return cls(
            kind=str(data["kind"]),
            action=Action(data["action"]),
            category=None if category is None else str(category),
            score=int(data["score"]),
            matches=tuple(str(match) for match in data.get("matches") or ()),
            excerpt=str(data.get("excerpt") or ""),
            high_risk=bool(data.get("high_risk", False)),
        )
