"""Normalisation: the spellings people use to dodge a filter all come out as the same words."""

import pytest

from gateway.content.normalise import normalise_page, normalise_phrase, spelling_variants


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("<p>I want to K1LL mys3lf!!!</p>", "i want to kil myself"),
        ("P0RN and pr0n", "porn and pron"),
        ("p.o.r.n and p o r n or p-o-r-n", "porn and porn or porn"),
        ("sooooo saaaad", "so sad"),
        ("free p<b></b>orn, s<span>e</span>x", "fre porn sex"),
        ("<script>var porn = 1</script><style>.porn{}</style>clean", "clean"),
        ("<!-- porn -->clean &amp; tidy &lt;ok&gt;", "clean tidy ok"),
        ("Samobójstwo, ŁÓDŹ, żółć", "samobojstwo lodz zolc"),
        ("SAMOBOJSTWO", "samobojstwo"),
        ("Price $100 in 2024, 10 km", "price 10 in 2024 10 km"),
        ("café naïve", "cafe naive"),
        # Full-width letters, curly quotes and odd spaces read like their plain forms.
        ("ｆｒｅｅ ｐｏｒｎ", "fre porn"),
        ("don’t\u00a0tell\u2009your mum", "don t tel your mum"),
        ("ﬁnd", "find"),
        # Cyrillic and Greek look-alikes: "pоrn" with a Cyrillic о, "ѕех" all Cyrillic, "ρorn" with a Greek rho.
        ("p\u043ern, \u0455\u0435\u0445 and \u03c1orn", "porn sex and porn"),
        # JSON bodies: escapes decoded, so "\\u0119" is "ę" and "\\n" separates words.
        ('{"t":"Jak si\\u0119 zabi\\u0107","b":"one\\ntwo \\ud83d\\ude00"}', "t jak sie zabic b one two"),
    ],
)
def test_page_text_normalises_to_plain_words(text, words):
    assert normalise_page(text) == f" {words} "


def test_arabic_and_urdu_letters_are_kept_and_their_variants_folded():
    # Vowel marks dropped, alef with hamza folded into plain alef, Arabic and Urdu yeh the same.
    assert normalise_page("أُرِيدُ أَنْ أَمُوتَ") == normalise_page("اريد ان اموت")
    assert normalise_page("كيف") == normalise_page("کیف")
    assert normalise_page("خودکشی").strip() == "خودکشی"
    assert normalise_page("الانتحـــار") == normalise_page("الانتحار")


def test_phrases_are_normalised_like_pages_so_both_sides_agree():
    assert normalise_phrase("Kill myself") == normalise_page("kiiiill   MYSELF").strip()
    assert normalise_phrase("jak się zabić") == normalise_page("JAK SIE ZABIC").strip()


def test_whole_words_only():
    # The text is words between single spaces, and phrases are matched padded with spaces.
    assert " as " not in normalise_page("class glass assess")


def test_ordinary_numbers_are_not_leetspeak():
    assert normalise_page("Year 7 scored 45 points in 2025") == " year 7 scored 45 points in 2025 "


def test_misspellings_expand_each_word_of_a_phrase():
    table = {"suicide": ("sucide", "suiside"), "methods": ("methds",)}
    assert spelling_variants("suicide methods", table) == {
        "suicide methods", "sucide methods", "suiside methods",
        "suicide methds", "sucide methds", "suiside methds",
    }  # fmt: skip
