"""Accuracy over the fixture corpus: clean pages (many on sensitive topics: health and RSE lessons, extremism and
Holocaust history, news of a suicide prevention charity, drugs education, online-safety advice …) and harmful ones
(English, Polish, Urdu and Arabic, many with leetspeak, spacing, repeated letters or misspellings), scored for a
pupil with the demo policy. B serves the same files through a real proxy.

A false positive is a clean page blocked; a false negative is a harmful page not blocked. The rates are printed
(`pytest -s`), with how many of each were flagged to the e-safety officer instead.
"""

from pathlib import Path

from gateway.decisions.types import Action
from gateway.identity.types import Identity

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "content"
PUPIL = Identity(group="pupil")


def outcomes(analyser, kind: str) -> dict[str, Action]:
    pages = sorted((CORPUS / kind).glob("*.html"))
    return {page.stem: analyser.analyse_page(page.read_text(encoding="utf-8"), PUPIL).action for page in pages}


def test_false_positive_and_false_negative_rates(demo_policy):
    benign = outcomes(demo_policy.content, "benign")
    harmful = outcomes(demo_policy.content, "harmful")
    assert len(benign) >= 55 and len(harmful) >= 55
    assert {name[:3] for name in benign} >= {"en_", "pl_", "ur_", "ar_"}
    assert {name[:3] for name in harmful} >= {"en_", "pl_", "ur_", "ar_"}

    blocked_benign = sorted(name for name, action in benign.items() if action is Action.BLOCK)
    missed_harmful = sorted(name for name, action in harmful.items() if action is not Action.BLOCK)
    false_positive = len(blocked_benign) / len(benign)
    false_negative = len(missed_harmful) / len(harmful)
    flagged_benign = sum(action is Action.FLAG for action in benign.values())
    unreported_harmful = sum(action is Action.ALLOW for action in harmful.values())
    print(
        f"\ncontent accuracy (pupil): {len(benign)} clean pages, {len(harmful)} harmful pages\n"
        f"  false positives (clean page blocked): {len(blocked_benign)} = {false_positive:.1%} {blocked_benign}\n"
        f"  clean pages flagged to the officer, not blocked: {flagged_benign}\n"
        f"  false negatives (harmful page not blocked): {len(missed_harmful)} = {false_negative:.1%} "
        f"{missed_harmful}\n"
        f"  harmful pages neither blocked nor flagged: {unreported_harmful}"
    )
    assert false_positive <= 0.02, blocked_benign
    assert false_negative <= 0.10, missed_harmful
