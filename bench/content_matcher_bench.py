"""Content analysis speed: the phrase automaton against a loop of compiled regular expressions.

    .venv/bin/python bench/content_matcher_bench.py

Prints the time to build the demo policy's analyser, then the speed of `analyse_page` on a realistic 100 KB HTML
page (clean school pages with their markup, scripts and styles, with a few listed phrases in the text) with the
full phrase set, split into normalisation and matching (and the Python normaliser the C one replaced, on the same
page), beside a loop of one compiled regex per phrase over the same normalised text. It repeats the matching with
the phrase set grown to 5,000 and 10,000 phrases (the real phrases joined with ordinary words), where the regex loop
slows in step and the automaton does not. Last, the streamed scanner on a 2 MB page in 64 KB pieces.

One session on a shared 2-core machine, before (Python normaliser, pyahocorasick) -> after (gateway/content/_scan.c):

    analyse_page, 100 KB page (599 phrase hits)       9.04 ms -> 1.22 ms   (normalising 7.25 ms -> 0.35 ms)
    analyse_page, English/Polish/Urdu/Arabic mixed   12.07 ms -> 1.29 ms
    matching alone, 1,796 / 10,000 patterns           1.03 / 1.06 ms -> 0.52 / 0.56 ms
    scanner, 2 MB in 64 KB pieces                      215 ms -> 39 ms
    analyse_page, bench/content_throughput.py's 50 KB clean page: 5.6 ms -> 0.21 ms

What is left on the 100 KB page is mostly Python: counting its 599 hits and finding the report's excerpt.
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from gateway.content.build import build_analyser  # noqa: E402
from gateway.content.matcher import PhraseMatcher, Tally  # noqa: E402
from gateway.content.normalise import normalise_page  # noqa: E402
from gateway.content.phrase_files import Phrase  # noqa: E402
from gateway.identity.types import Identity  # noqa: E402
from gateway.policy.loader import load_policy  # noqa: E402
from tests.support import reference_normalise  # noqa: E402

POLICY = REPO_ROOT / "policies" / "default.yaml"
CORPUS = REPO_ROOT / "tests" / "fixtures" / "content" / "benign"
PAGE_BYTES = 100 * 1024
PUPIL = Identity(group="pupil")
FILLER = ("today", "school", "report", "online", "video", "club", "news", "guide", "free", "local")


def page(size: int, prefixes: tuple[str, ...] = ("en_",)) -> str:
    """Clean corpus pages (English by default) one after another, with a few listed phrases, cut to `size`
    bytes."""
    pages = [path.read_text(encoding="utf-8") for path in sorted(CORPUS.glob("*.html")) if path.name.startswith(prefixes)]
    text, i = "", 0
    while len(text.encode()) < size:
        text += pages[i % len(pages)]
        if i % 7 == 0:
            text += "<p>Comments: I want to die lol. Free spins! buy weed here.</p>"
        i += 1
    return text.encode()[:size].decode(errors="ignore")


def best_of(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def grown(entries: list[tuple[str | None, Phrase]], target: int) -> list[tuple[str | None, Phrase]]:
    """The real phrases plus variants joined with ordinary words, up to `target` phrases."""
    out = list(entries)
    for word in FILLER:
        for category, phrase in entries:
            if len(out) >= target:
                return out
            out.append((category, Phrase(f"{phrase.text} {word}", f"{phrase.normalised} {word}", phrase.weight)))
    return out


def regex_loop(patterns: list[re.Pattern[str]], text: str) -> int:
    return sum(1 for pattern in patterns for _ in pattern.finditer(text))


def main() -> None:
    loaded = load_policy(POLICY)
    build = best_of(5, lambda: build_analyser(loaded))
    analyser = build_analyser(loaded)
    assert analyser is not None
    print(f"build: {build * 1000:.1f} ms for {len(analyser.pages.entries):,} page phrases ({analyser.pages.patterns:,} patterns with "
          f"misspellings) and {len(analyser.searches.entries):,} search terms")  # fmt: skip

    html = page(PAGE_BYTES)
    megabytes = len(html.encode()) / 1e6
    text = normalise_page(html)
    whole = best_of(30, lambda: analyser.analyse_page(html, PUPIL))
    normalise = best_of(30, lambda: normalise_page(html))
    finding = analyser.analyse_page(html, PUPIL)
    print(f"page: {len(html.encode()) / 1024:.0f} KB HTML, {len(text) / 1024:.0f} KB of words; finding: "
          f"{finding.action.value} {finding.category} {finding.score}")
    print(f"analyse_page: {whole * 1000:.3f} ms = {megabytes / whole:.1f} MB/s "
          f"(normalising {normalise * 1000:.3f} ms, matching and scoring {(whole - normalise) * 1000:.3f} ms)")
    python = best_of(5, lambda: reference_normalise.normalise_page(html))
    print(f"the Python normaliser it replaced (tests/support/reference_normalise.py): {python * 1000:.2f} ms, "
          f"{python / normalise:.0f}x the C one")
    # Text outside ASCII after folding (Arabic, Urdu) makes every regular expression step slower.
    mixed = page(PAGE_BYTES, ("en_", "pl_", "ur_", "ar_"))
    mixed_time = best_of(30, lambda: analyser.analyse_page(mixed, PUPIL))
    print(f"analyse_page, English, Polish, Urdu and Arabic pages mixed: {mixed_time * 1000:.2f} ms = "
          f"{len(mixed.encode()) / 1e6 / mixed_time:.1f} MB/s")

    # The same phrases, as the automaton holds them, for both matchers.
    real = [(entry.category, Phrase(entry.text, pattern.strip(), entry.weight))
            for pattern, ids in zip(analyser.pages.pattern_texts, analyser.pages.ids, strict=True)
            for entry in (analyser.pages.entries[ids[0]],)]  # fmt: skip
    print(f"{'phrases':>8}  {'automaton ms':>12}  {'MB/s':>7}  {'regex loop ms':>13}  {'MB/s':>7}  {'speed-up':>8}")
    for target in (len(real), 5_000, 10_000):
        phrases = grown(real, target)
        matcher = PhraseMatcher(phrases, {})
        automaton = best_of(15, lambda: Tally(matcher).add(text))
        patterns = [re.compile(re.escape(f" {phrase.normalised} ")) for _, phrase in phrases]
        loop = best_of(3, lambda: regex_loop(patterns, text))
        print(f"{len(phrases):>8,}  {automaton * 1000:>12.2f}  {megabytes / automaton:>7.1f}  {loop * 1000:>13.1f}  "
              f"{megabytes / loop:>7.2f}  {loop / automaton:>7.0f}x")

    big = page(2 * 1024 * 1024)
    pieces = [big[i : i + 65536] for i in range(0, len(big), 65536)]

    def stream() -> None:
        scanner = analyser.scanner(PUPIL)
        for piece in pieces:
            scanner.feed(piece)
        scanner.finish()

    streamed = best_of(5, stream)
    print(f"scanner: {len(big.encode()) / 1e6:.1f} MB in {len(pieces)} pieces of 64 KB: {streamed * 1000:.0f} ms = "
          f"{len(big.encode()) / 1e6 / streamed:.1f} MB/s")


if __name__ == "__main__":
    main()
