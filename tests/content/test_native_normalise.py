"""The C normaliser and matcher (gateway/content/_scan.c) against the Python normaliser they replaced
(tests/support/reference_normalise.py) and a plain search: the same words from every fixture page, from markup and
spellings built to trip one pass up, and from random text in every script the lists use."""

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.content import normalise
from gateway.content.normalise import _scan
from tests.support import reference_normalise as reference

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "content"
PAGES = sorted(FIXTURES.rglob("*.html"))


def assert_same(text: str) -> None:
    assert normalise.strip_markup(text) == reference.strip_markup(text), text
    assert normalise.normalise_page(text) == reference.normalise_page(text), text
    assert normalise.normalise_words(text) == reference.normalise_words(text), text


def test_every_fixture_page_reads_the_same():
    # English, Polish, Urdu and Arabic pages, clean and harmful, with their obfuscated spellings.
    assert len(PAGES) >= 100
    for path in PAGES:
        assert_same(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "<",
        "a < b > c",
        # The markup steps run one after another: each reads what the one before left.
        "<!-- <script> -->x</script> y",
        "<!-- <script>--></script> --> z",
        "<!--[if IE]><script src=x></script><![endif]-->kept",
        "<<b>x> y",
        "<p <b>> q",
        "</<!---->b> r",
        "<scr<b>ipt>x</script>",
        "<script>never closed " * 3,
        "<SCRIPT type=x>a</script >b</ScRiPt>c",
        "<ſcript>x</script>after",
        "<scrıpt>x</scrıpt>after",
        "<svg><path/></svg>shown <template>hidden</template>",
        "<Span>x</Span>y <SPAN>p</SPAN>orn <b\ttitle=1>q</b>",
        "<!doctype html><html><body>hi</body></html>",
        # Entities as html.unescape reads them: without semicolons, in numbers, past Unicode, half surrogates.
        "&amp; &AMP &ampx; &notin; &notit; &Tab;x &#128; &#x80; &#0; &#xD800; &#99999999999; &#1;&#11;&#xFFFF;",
        "&lt;b&gt;not a tag&lt;/b&gt; &amp;lt; &fjlig; &NotEqualTilde; &#",
        # JSON escapes after entities: "&#92;n" is a backslash and an n, then a break.
        '{"a":"x\\u0142y\\n\\ud83d\\ude00\\"\\\\q\\/"} &#92;n \\u00 \\x',
        # Leetspeak only in words that mix it with letters; long digit runs before a letter.
        "p0rn 2024 $100 @ss 1111111111111111111111111111111111111111111111111111111111111111111111a h4x0r 5ex 9a",
        "p o r n p.o.r.n a b a-a-a x y xx y z sooooo",
        # Case folding that changes length, look-alikes, full width, accents, marks, joiners.
        "STRAẞE İstanbul ﬃ Ǆ ΣΑΣ ς K Å pоrn ｐｏｒｎ Ｐ０ＲＮ cafe\u0301 ł Ł ß æ ø đ",
        "أُرِيدُ أَنْ أَمُوتَ كيف کیف الانتحـــار خودکشی\u200cکا \u200dx\u200by\u00adz ہ ۀ ة",
        "जान दे दो 日本語 😀 𐐀𐐨 \U0001d7d8 ½ ² Ⅻ ٣ µ ª",
        "\x00\x1c\ud800 \U0010ffff",
    ],
)
def test_markup_and_spellings_read_the_same(text):
    assert_same(text)


TOKENS = [
    "<", ">", "/", "!", "-", "--", "<!--", "-->", "script", "SCRIPT", "ſcript", "scrıpt", "scrİpt", "style", "noscript",
    "template", "svg", "b", "B", "Span", "span", "SPAN", "strong", "wbr", "em", "p", "div", "a", "</", " ", "  ", "\n",
    "\t", "\f", "\r", "\u3000", "\u00a0", "&", "#", ";", "amp", "AMP", "lt", "x", "X", "41", "0", "nbsp", "NotEqualTilde",
    "Tab", "notin", "not", "fjlig", "&#", "&#x", "d83d", "128512", "\\", "u", "0041", "ud83d", "\\u0142", '"', "n", "_",
    "0", "1", "3", "4", "5", "7", "8", "9", "2", "@", "$", "a", "e", "o", "s", "k", "i", "porn", "p0rn", "k1ll", "aa",
    "ą", "ł", "Ł", "ż", "ó", "ś", "ß", "ẞ", "İ", "ı", "K", "Å", "ﬁ", "ﬃ", "æ", "Œ", "ø", "đ",
    "ا", "أ", "ي", "ى", "ك", "ک", "ی", "ة", "ہ", "ـ", "\u064e", "\u0670", "خودکشی", "\u200c", "\u200d", "\u200b", "\u00ad",
    "а", "е", "о", "р", "с", "ѕ", "ԁ", "ɡ", "ο", "α", "ρ", "κ", "Σ", "ς", "ｐ", "ｏ", "Ｒ", "！", "１",
    "😀", "𐐀", "𝒜", "’", "—", "…", "‥", "€", "²", "½", "٣", "Ⅻ", "ǅ", "\u0301", "\u0300", "\u0307", "µ", "ª", "\x00",
]  # fmt: skip


def random_text(rng: random.Random, tokens: int) -> str:
    return "".join(rng.choice(TOKENS) if rng.random() < 0.85 else chr(rng.randrange(0x20, 0x3000))
                   for _ in range(tokens))  # fmt: skip


def test_random_text_reads_the_same():
    rng = random.Random(10)
    for _ in range(4000):
        assert_same(random_text(rng, rng.randrange(0, 80)))


MARKUP = [
    "<b>", "</b>", "<B>", "<span class=x>", "</span>", "<script>", "</script>", "<SCRIPT a=1>", "</script >", "<style>",
    "</style>", "<svg>", "</svg>", "<!--", "-->", "<!--[if IE]>", "<![endif]-->", "<", ">", "<<", "</", "</<", "<p>",
    "</p>", "<p", "<div id='a>b'>", "<a href=x>", "</a>", "<!doctype html>", "<br/>", "<3", "a < b", "x", "porn", " ",
    "\n", "&amp;", "&lt;", "&", "--", "-", "!", "/", "<scr", "ipt>", "<noscript>", "</noscript>", "<template>",
]  # fmt: skip


def test_random_markup_reads_the_same():
    # Tags, comments and elements in every order, broken and nested: the one-pass reading of the markup must give
    # what the steps one after another give, or hand over to them.
    rng = random.Random(13)
    for _ in range(10_000):
        text = "".join(rng.choice(MARKUP) for _ in range(rng.randrange(0, 40)))
        assert normalise.strip_markup(text) == reference.strip_markup(text), text


def test_fixture_pages_cut_and_spliced_read_the_same():
    # Pieces of real pages joined at random places: tags, entities and words cut part way.
    rng = random.Random(11)
    texts = [path.read_text(encoding="utf-8") for path in PAGES]
    for _ in range(300):
        pieces = []
        for _ in range(rng.randrange(1, 6)):
            text = rng.choice(texts)
            start = rng.randrange(len(text))
            pieces.append(text[start : start + rng.randrange(1, 400)])
        assert_same("".join(pieces))


@pytest.mark.parametrize(
    "page",
    [
        # An element or comment never closed is searched for its end once, not once per opening tag; a '>' far
        # ahead is found once, not once per '<' before it.
        "<script>" * 100_000 + "<style>" * 100_000 + "<!--" * 100_000,
        "<script " * 100_000 + ">",
        "<!-- >" * 100_000,
        "<b" * 100_000 + ">",
        "x<" * 100_000,
    ],
    ids=["unclosed", "one-far-gt", "unended-comments", "open-tags", "no-tags"],
)
def test_no_page_makes_the_markup_steps_search_again_and_again(page):
    start = time.process_time()
    normalise.normalise_page(page)
    assert time.process_time() - start < 2
    assert_same(page[:3000] + page[-10:])


def test_pages_of_rare_characters_and_pages_past_the_kept_buffers_read_the_same():
    # Every character beyond the BMP is folded by asking Python (only some are kept); a page over a million
    # characters gives its buffers back afterwards.
    astral = "".join(map(chr, range(0x10400, 0x10400 + 6000)))
    assert_same(astral[:3000] + " p0rn " + astral[3000:])
    big = "<p>Free p0rn here, k i l l</p>" * 40_000
    assert normalise.normalise_page(big) == reference.normalise_page(big)
    assert_same("<p>after a big page: SAMOBÓJSTWO</p>")


def occurrences(patterns: list[str], text: str) -> list[tuple[int, int, int]]:
    found = []
    for index, pattern in enumerate(patterns):
        at = text.find(pattern)
        while at >= 0:
            found.append((at, at + len(pattern), index))
            at = text.find(pattern, at + 1)
    return sorted(found)


def test_the_automaton_finds_every_occurrence_a_plain_search_does():
    rng = random.Random(12)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789łاکی日"
    for _ in range(300):
        words = ["".join(rng.choice(letters[: rng.randrange(2, len(letters))]) for _ in range(rng.randrange(1, 4)))
                 for _ in range(rng.randrange(1, 60))]  # fmt: skip
        patterns = list(dict.fromkeys(" " + " ".join(rng.sample(words, rng.randrange(1, min(4, len(words)) + 1))) + " "
                                      for _ in range(rng.randrange(1, 200))))  # fmt: skip
        text = " " + " ".join(rng.choice(words) for _ in range(rng.randrange(0, 200))) + " "
        assert sorted(_scan.Automaton(patterns).hits(text)) == occurrences(patterns, text)


def test_patterns_and_text_without_the_padding_spaces_are_found_too():
    # The matcher pads both; the automaton does not rely on it.
    patterns = [" bar", " foo ba", " foo bar ", " x"]
    for text in (" foo bar", " foo bar ", "foo bar", " foo  bar", " xx foo barbar x", " "):
        assert sorted(_scan.Automaton(patterns).hits(text)) == occurrences(patterns, text), text


def test_the_automaton_on_the_demo_phrases(demo_policy):
    # Hundreds of patterns, most starting with different letters: the word start's many branches.
    matcher = demo_policy.content.pages
    patterns = matcher.pattern_texts
    text = " " + " ".join(pattern.strip() for pattern in reversed(patterns)) + " filler words here "
    assert sorted(matcher.automaton.hits(text)) == occurrences(patterns, text)


def test_a_page_scanned_in_one_call_gives_the_words_and_hits_of_the_two_steps(demo_policy):
    # scan_page normalises and matches in one call, and makes the words a str only when something matched.
    automaton = demo_policy.content.pages.automaton
    rng = random.Random(14)
    pages = [path.read_text(encoding="utf-8") for path in PAGES] + [random_text(rng, 200) for _ in range(200)]
    for page in pages:
        words = normalise.normalise_page(page)
        hits = automaton.hits(words)
        assert automaton.scan_page(page) == ((words if hits else None), hits)


def test_patterns_start_with_a_space():
    with pytest.raises(ValueError, match="starts with a space"):
        _scan.Automaton(["porn "])


def test_a_checkout_without_the_compiled_module_says_to_run_bootstrap():
    hide = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'gateway.content._scan': raise ImportError('not built')\n"
        "sys.meta_path.insert(0, Hide())\n"
        "import gateway.content.normalise\n"
    )
    run = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "run scripts/bootstrap" in run.stderr
