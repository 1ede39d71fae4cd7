"""The analyser: scores per category, thresholds per group and year group, mitigating context, searches, and text
streamed in pieces."""

import pytest

from gateway.content.analyser import MAX_HELD_BACK
from gateway.content.findings import ContentFinding
from gateway.decisions.types import Action
from gateway.identity.types import Identity
from gateway.policy.compiled import load_compiled
from tests.support.policies import write_policy

PUPIL = Identity(group="pupil")
STAFF = Identity(group="staff")
YEAR_2 = Identity(group="pupil", year_group=2)

SMALL = """
content:
  enabled: true
  max_bytes: 4096
  context: [content/context.txt]
  misspellings: [content/misspellings.txt]
  page_thresholds:
    default: {flag: 5, block: 10}
    groups: {staff: {flag: 10, block: 30}}
    year_groups: {2: {flag: 2, block: 4}}
  search_thresholds:
    default: {flag: 3, block: 5}
  categories:
    suicide: {phrases: [content/suicide.txt], search_terms: [content/suicide_search.txt]}
    drugs: {phrases: [content/drugs.txt], search_terms: [content/drugs_search.txt], search: flag}
reports: {alerts: {high_risk: [suicide]}}
"""
FILES = {
    "suicide.txt": "# suicide\n5 want to die\n3 end it all\n1 suicide\n-6 suicide prevention\n",
    "drugs.txt": "4\tbuy weed\n",
    "context.txt": "-2 lesson\n",
    "misspellings.txt": "sucide suicide\n",
    "suicide_search.txt": "6 suicide methods\n2 suicide\n-3 helpline\n",
    "drugs_search.txt": "6 buy weed\n",
}


@pytest.fixture(scope="module")
def analyser(tmp_path_factory):
    folder = tmp_path_factory.mktemp("content")
    (folder / "content").mkdir()
    for name, text in FILES.items():
        (folder / "content" / name).write_text(text)
    compiled = load_compiled(write_policy(folder, SMALL))
    assert compiled.content is not None
    return compiled.content


def test_a_page_under_the_thresholds_is_allowed_and_names_what_matched(analyser):
    finding = analyser.analyse_page("<p>Sometimes I feel I want to die.</p>", PUPIL)
    assert (finding.action, finding.category, finding.score) == (Action.FLAG, "suicide", 5)
    assert finding.matches == ("want to die",)
    assert finding.excerpt == "Sometimes I feel I want to die."
    assert finding.high_risk


def test_thresholds_by_group_then_year_group(analyser):
    text = "I want to die. I want to die. End it all."  # 5 + 5 + 3
    assert analyser.analyse_page(text, PUPIL).action is Action.BLOCK
    assert analyser.analyse_page(text, STAFF).action is Action.FLAG
    once = "I want to die"
    assert analyser.analyse_page(once, PUPIL).action is Action.FLAG
    # The youngest pupils are stricter than their group.
    assert analyser.analyse_page(once, YEAR_2).action is Action.BLOCK
    assert analyser.analyse_page("nothing here", YEAR_2).action is Action.ALLOW


def test_a_phrase_counts_at_most_three_times(analyser):
    finding = analyser.analyse_page("end it all " * 50, STAFF)
    assert finding.score == 9


def test_mitigating_context_lowers_the_score_but_never_below_a_quarter(analyser):
    # "suicide prevention" replaces the "suicide" inside it and lowers the score.
    page = "Suicide prevention lesson: what to say if a friend says they want to die."
    assert analyser.analyse_page(page, PUPIL).action is Action.ALLOW
    # Pasting support words into a harmful page does not unblock it.
    harmful = "want to die " * 3 + "end it all " * 3 + "suicide prevention lesson " * 20
    finding = analyser.analyse_page(harmful, PUPIL)
    assert finding.score == (15 + 9) // 4
    assert finding.action is Action.FLAG
    assert analyser.analyse_page(harmful, YEAR_2).action is Action.BLOCK


def test_misspellings_leet_and_markup_tricks_match(analyser):
    for text in ("w4nt t0 d1e", "waaaant to dieeee", "w<b></b>ant to d<span>i</span>e", "W.A.N.T to die",
                 "I want&nbsp;to die"):  # fmt: skip
        assert analyser.analyse_page(text, YEAR_2).action is Action.BLOCK, text
    assert analyser.analyse_page("sucide", YEAR_2).matches == ("suicide",)


def test_no_match_inside_other_words(analyser):
    assert analyser.analyse_page("unwanted todie suicides", YEAR_2).category is None


def test_the_strongest_category_wins(analyser):
    finding = analyser.analyse_page("buy weed buy weed buy weed. I want to die.", PUPIL)
    assert (finding.category, finding.score, finding.high_risk) == ("drugs", 12, False)


def test_findings_round_trip_through_json_form(analyser):
    finding = analyser.analyse_page("I want to die", PUPIL)
    assert ContentFinding.from_dict(finding.as_dict()) == finding
    assert finding.as_dict()["action"] == "flag"


def test_searches_use_their_own_terms_and_thresholds(analyser):
    blocked = analyser.analyse_search("suicide methods", PUPIL)
    assert (blocked.kind, blocked.action, blocked.category, blocked.excerpt) == (
        "search", Action.BLOCK, "suicide", "suicide methods")  # fmt: skip
    assert analyser.analyse_search("suicide", PUPIL).action is Action.ALLOW
    assert analyser.analyse_search("suicide helpline", PUPIL).action is Action.ALLOW
    assert analyser.analyse_search("homework help", PUPIL).category is None
    # Drugs searches are only reported, never blocked, as the policy says.
    flagged = analyser.analyse_search("buy weed", PUPIL)
    assert (flagged.action, flagged.matches) == (Action.FLAG, ("buy weed",))


@pytest.mark.parametrize(
    ("content_type", "length", "wanted"),
    [
        ("text/html; charset=utf-8", 1000, True),
        ("text/plain", None, True),
        ("application/json", 10, True),
        ("application/xhtml+xml", 10, True),
        ("application/ld+json", 10, True),
        # A browser sniffs an untyped body: it must not be a way round the analysis.
        (None, 10, True),
        ("text/html", 5000, False),
        ("image/png", 10, False),
        ("video/mp4", None, False),
        ("application/octet-stream", 10, False),
        ("application/zip", 10, False),
    ],
)
def test_which_bodies_are_analysed_whole(analyser, content_type, length, wanted):
    assert analyser.wants(content_type, length) is wanted


def test_streamed_text_matches_a_phrase_split_between_pieces(analyser):
    scanner = analyser.scanner(YEAR_2)
    assert scanner.feed("<html><body><p>" + "filler words " * 200 + "I want t") is None
    # The last word of a piece waits for white space (it may go on in the next piece).
    blocked = scanner.feed("o die</p>\n")
    assert blocked is not None and blocked.action is Action.BLOCK and blocked.matches == ("want to die",)
    # Told once only; the final finding agrees.
    assert scanner.feed("more text") is None
    assert scanner.finish().action is Action.BLOCK


def test_streamed_text_split_inside_a_tag_or_a_script(analyser):
    scanner = analyser.scanner(YEAR_2)
    assert scanner.feed('<p class="x">hello </p><scr') is None
    assert scanner.feed('ipt>var s = "want to die";</script><p>di') is None
    assert scanner.feed("e</p>") is None
    assert scanner.finish().action is Action.ALLOW
    for pieces in (("<p>I w", "ant", " to", " d", "ie</p>"), ("<p>I w<b>", "</b>ant to d<span>", "i</span>e</p>")):
        scanner = analyser.scanner(YEAR_2)
        for piece in pieces:
            scanner.feed(piece)
        assert scanner.finish().action is Action.BLOCK, pieces


def test_a_script_with_comparisons_is_not_held_back(analyser):
    scanner = analyser.scanner(YEAR_2)
    scanner.feed("<script>if (a < b) { go(); }</script><p>" + "words " * 100)
    assert len(scanner.held) < 10


def test_streamed_text_without_spaces_is_held_back_only_so_far(analyser):
    scanner = analyser.scanner(PUPIL)
    for _ in range(40):
        scanner.feed("x" * 65536)
        assert len(scanner.held) <= MAX_HELD_BACK + 65536
    assert scanner.finish().action is Action.ALLOW


def test_streamed_pieces_count_like_one_page(analyser):
    text = "<p>" + "I want to die. " * 2 + "lorem ipsum " * 500 + "end it all</p>"
    whole = analyser.analyse_page(text, STAFF)
    scanner = analyser.scanner(STAFF)
    for i in range(0, len(text), 97):
        assert scanner.feed(text[i : i + 97]) is None
    streamed = scanner.finish()
    assert (streamed.action, streamed.category, streamed.score) == (whole.action, whole.category, whole.score) == (
        Action.FLAG, "suicide", 13)  # fmt: skip


def test_the_demo_policy_analyses_in_four_languages(demo_policy):
    analyser = demo_policy.content
    for text in ("how to kill myself", "jak się zabić", "میں مرنا چاہتا ہوں، خودکشی کا طریقہ", "كيف أقتل نفسي"):
        finding = analyser.analyse_page(f"<p>{text}</p>", YEAR_2)
        assert (finding.action, finding.category, finding.high_risk) == (Action.BLOCK, "suicide", True), text
    assert analyser.analyse_search("porn xxx", PUPIL).action is Action.BLOCK
    assert analyser.analyse_search("suicide prevention helpline", PUPIL).action is Action.ALLOW
