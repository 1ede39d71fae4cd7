"""Turn page text and phrases into one comparable form, so spelling tricks do not hide a phrase.

Both sides go through the same steps (a phrase is normalised exactly like a page), so whatever a step does to a
word it does to the phrase too: "kill" and "kiiiill" both become "kil". Every step is a regular expression or a
translation table over the whole text: no per-character Python loop on the proxy's hot path.

Steps: markup out (script and style contents dropped, tags removed, inline ones without a gap, entities decoded), case folded, accents
stripped (Polish letters become their plain forms, so "samobójstwo" and "samobojstwo" agree; Arabic and Urdu
letters stay, only their vowel marks and letter variants are folded), leetspeak decoded inside words, punctuation
to spaces, runs of single letters joined ("p o r n", "p.o.r.n"), repeated letters collapsed. The result is words
separated by single spaces with a space at each end, so a phrase " like this " matches whole words only.
"""

from __future__ import annotations

import html
import re
import unicodedata

_DROPPED_ELEMENTS = re.compile(r"<(script|style|noscript|template|svg)\b[^>]*>.*?</\1\s*>", re.I | re.S)
_COMMENTS = re.compile(r"<!--.*?-->", re.S)
# Inline tags inside a word must not split it ("p<b></b>orn"); every other tag separates words.
_INLINE_TAGS = re.compile(r"</?(?:a|abbr|b|bdi|bdo|code|em|font|i|mark|q|s|small|span|strong|sub|sup|u|wbr)\b[^>]*>",
                          re.I)  # fmt: skip
_TAGS = re.compile(r"</?[A-Za-z!][^>]*>")

# Combining marks: Latin accents, Arabic vowel marks (harakat), the superscript alef, Quranic annotation signs.
_MARKS = re.compile(r"[\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]+")
# Letters NFKD does not decompose, and Arabic-script letter variants written interchangeably (Arabic and Urdu yeh,
# kaf and heh; alef maksura; teh marbuta); tatweel (the stretching stroke) and zero-width joiners go.
_FOLD = str.maketrans(
    {
        "ł": "l", "ß": "ss", "ø": "o", "đ": "d", "æ": "ae", "œ": "oe", "ı": "i",
        "ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه", "ہ": "ه", "ۀ": "ه",
        "ـ": None, "\u200c": " ", "\u200d": None, "\u200b": None, "\u00ad": None,
    }
)  # fmt: skip

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s"})
# A word that mixes letters with leet characters ("p0rn", "s3x", "@ss"); plain numbers and prices are left alone.
_LEET_WORD = re.compile(r"[a-z0-9@$]*(?:[a-z][0134578@$]|[0134578@$][a-z])[a-z0-9@$]*")

_NON_WORD = re.compile(r"[\W_]+")
# Three or more single letters in a row: a word spelt out to dodge a filter ("p o r n" once dots became spaces).
_SPELT_OUT = re.compile(r"(?<!\S)\w(?: \w(?!\S)){2,}")
_REPEATS = re.compile(r"(\w)\1+")


def strip_markup(text: str) -> str:
    if "<" in text:
        text = _DROPPED_ELEMENTS.sub(" ", text)
        text = _COMMENTS.sub("", text)
        text = _INLINE_TAGS.sub("", text)
        text = _TAGS.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    return text


def fold(text: str) -> str:
    """Case, accents and letter variants folded; punctuation, digits and spacing untouched."""
    text = text.casefold()
    if not text.isascii():
        text = _MARKS.sub("", unicodedata.normalize("NFKD", text)).translate(_FOLD)
    return text


def normalise_words(text: str) -> str:
    """Folded text (no markup) in matching form: ' word word … '."""
    text = fold(text)
    text = _LEET_WORD.sub(lambda m: m.group().translate(_LEET), text)
    text = _NON_WORD.sub(" ", text)
    text = _SPELT_OUT.sub(lambda m: m.group().replace(" ", ""), text)
    text = _REPEATS.sub(r"\1", text)
    return f" {text.strip()} "


def normalise_page(text: str) -> str:
    return normalise_words(strip_markup(text))


def normalise_phrase(phrase: str) -> str:
    """A phrase in the same form as the text it is matched against, without the padding spaces."""
    return normalise_words(phrase).strip()


def spelling_variants(phrase: str, misspellings: dict[str, tuple[str, ...]]) -> set[str]:
    """The normalised phrase with each word also in its known misspellings (`misspellings` maps a normalised
    correct word to normalised wrong ones). Done on the phrases once at compile time rather than on every page."""
    variants = {phrase}
    for i, word in enumerate(phrase.split(" ")):
        wrong = misspellings.get(word)
        if not wrong:
            continue
        for variant in list(variants):
            words = variant.split(" ")
            for spelling in wrong:
                variants.add(" ".join([*words[:i], spelling, *words[i + 1 :]]))
    return variants
