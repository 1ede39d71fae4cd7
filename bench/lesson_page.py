"""A page of ordinary lesson text, as the benches serve it where content analysis must read what passes.

The paragraphs come from the clean pages of tests/fixtures/content (everyday lessons that score nothing in any
category), so a page of them is analysed in full and passes: what the analysis costs, not what a block costs.
"""

from __future__ import annotations

import re
from pathlib import Path

CLEAN_PAGES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "content" / "benign"
# Lessons on everyday topics: no phrase of any category, so a page of them scores nothing however long it is.
EVERYDAY = ("banana_bread", "book_review", "chess_club", "coding_tutorial", "football_report", "gardening_weeds",
            "great_fire_london", "maths_fractions", "photosynthesis", "planets", "rainforest", "romans_britain",
            "volcanoes", "water_cycle", "weather")  # fmt: skip
PAGE_SIZE = 50 * 1024
COUNTER = b"<!--%012d-->"
"""Appended to a page to make each response new, so no finding is reused (the gateway remembers them by digest)."""
COUNTER_SIZE = len(COUNTER % 0)


def html_page(size: int = PAGE_SIZE) -> bytes:
    """About ``size`` bytes: paragraphs of everyday lessons from the clean corpus, one after another, in one
    document."""
    paragraphs: list[str] = []
    for name in EVERYDAY:
        page = (CLEAN_PAGES / f"en_{name}.html").read_text(encoding="utf-8")
        paragraphs += re.findall(r"<p>.*?</p>", page, re.S)
    body: list[str] = []
    length = 0
    while length < size:
        paragraph = paragraphs[len(body) % len(paragraphs)]
        body.append(paragraph)
        length += len(paragraph.encode()) + 1
    head = '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Lessons</title></head><body>'
    return (head + "\n".join(body) + "</body></html>").encode()
