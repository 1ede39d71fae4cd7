"""Searches as pupils type them: harmful ones are blocked or reported, clean ones (including searches about
sensitive topics for homework, and place names that contain a listed word) go through. A clean search that names
a high-risk topic ("suicide" in a Romeo and Juliet essay) may be reported to the e-safety officer, never blocked."""

import pytest

from gateway.decisions.types import Action
from gateway.identity.types import Identity

PUPIL = Identity(group="pupil")

CLEAN = [
    "suicide prevention helpline", "samaritans phone number", "world war 2 nazi germany", "how do volcanoes form",
    "drugs education ks3", "sex education year 6", "effects of cocaine on the body", "gambling addiction help",
    "knife crime statistics uk", "history of isis bbc", "essex weather", "sussex university", "middlesex hospital",
    "scunthorpe united", "blue tits nesting box", "great tit bird", "cockerel drawing", "dick whittington story",
    "holocaust memorial day", "anne frank diary", "prevent duty training", "childline", "nspcc report abuse",
    "how to stop self harm", "eating disorder support", "romeo and juliet suicide scene analysis", "weed killer",
    "bullet journal ideas", "shooting star", "the blitz bombing london", "crusades holy war ks3", "casino royale film",
    "poker face lyrics", "minecraft tnt", "pokemon cards", "maths revision", "jak pomóc osobie w kryzysie",
    "zapobieganie samobójstwom", "خودکشی کی روک تھام", "الوقاية من الانتحار", "تاريخ الأندلس",
]  # fmt: skip
HARMFUL = [
    "porn xxx", "free porn", "p0rn", "pornhub", "s3x videos", "naked girls", "onlyfans leaks", "hentai",
    "how to kill myself", "painless suicide", "suicide methods", "i want to die", "kys", "pro ana tips", "thinspo",
    "how to hide cuts", "buy weed", "weed near me", "online casino free spins", "bet365", "zombie knife",
    "how to make a bomb", "guns for sale", "join isis", "white genocide", "holocaust hoax", "gore videos",
    "beheading video", "jailbait", "child porn", "darmowe porno", "jak się zabić", "dopalacze", "kasyno online",
    "فحش ویڈیو", "خودکشی کا طریقہ", "افلام اباحية", "كيف أقتل نفسي", "الانضمام إلى داعش",
]  # fmt: skip


def test_search_accuracy(demo_policy):
    analyser = demo_policy.content
    findings = {terms: analyser.analyse_search(terms, PUPIL) for terms in CLEAN}
    stopped_clean = {terms: f.action.value for terms, f in findings.items() if f.action is not Action.ALLOW}
    missed = [terms for terms in HARMFUL if analyser.analyse_search(terms, PUPIL).action is Action.ALLOW]
    print(f"\nsearches (pupil): {len(stopped_clean)}/{len(CLEAN)} clean searches stopped or reported {stopped_clean}; "
          f"{len(missed)}/{len(HARMFUL)} harmful searches let through unreported {missed}")
    assert all(findings[terms].action is Action.FLAG and findings[terms].high_risk for terms in stopped_clean)
    assert not missed


@pytest.mark.parametrize("terms", ["how to kill myself", "jailbait", "join isis"])
def test_high_risk_searches_are_blocked_and_named(demo_policy, terms):
    finding = demo_policy.content.analyse_search(terms, PUPIL)
    assert finding.action is Action.BLOCK and finding.high_risk and finding.excerpt == terms and finding.matches


def test_a_drugs_search_is_reported_not_blocked(demo_policy):
    finding = demo_policy.content.analyse_search("buy weed", PUPIL)
    assert (finding.action, finding.category, finding.matches) == (Action.FLAG, "drugs", ("buy weed",))
