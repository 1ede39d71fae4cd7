"""Turn page text and phrases into one comparable form, so spelling tricks do not hide a phrase.

Both sides go through the same steps (a phrase is normalised exactly like a page), so whatever a step does to a
word it does to the phrase too: "kill" and "kiiiill" both become "kil".

Steps: markup out (script and style contents dropped, tags removed, inline ones without a gap, entities and JSON
string escapes decoded), case folded, accents stripped (Polish letters become their plain forms, so "samobójstwo"
and "samobojstwo" agree; Arabic and Urdu letters stay, only their vowel marks and letter variants are folded),
leetspeak decoded inside words, punctuation to spaces, runs of single letters joined ("p o r n", "p.o.r.n"),
repeated letters collapsed. The result is words separated by single spaces with a space at each end, so a phrase
" like this " matches whole words only.

The steps run in C (`gateway/content/_scan.c`, one pass for the markup and one for the rest, a few nanoseconds a
character), built by the editable install. What needs `unicodedata` stays here: the fold of each non-ASCII
character, which the C side asks for the first time it meets the character and keeps.
"""

from __future__ import annotations

import html
import html.entities
import re
import unicodedata

try:
    from gateway.content import _scan
except ImportError as exc:  # pragma: no cover - a checkout that was never built
    raise ImportError(
        "gateway.content._scan, the C content normaliser, is not built (or was built for another Python): "
        "run scripts/bootstrap"
    ) from exc

# Combining marks: Latin accents, Arabic vowel marks (harakat), the superscript alef, Quranic annotation signs.
_MARKS = re.compile(r"[\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]+")
# Letters NFKD does not decompose, and Arabic-script letter variants written interchangeably (Arabic and Urdu yeh,
# kaf and heh; alef maksura; teh marbuta); tatweel (the stretching stroke) and zero-width joiners go.
_VARIANTS = {
    "ł": "l", "ß": "ss", "ø": "o", "đ": "d", "æ": "ae", "œ": "oe", "ı": "i",
    "ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه", "ہ": "ه", "ۀ": "ه",
    "ـ": "", "\u200c": " ", "\u200d": "", "\u200b": "", "\u00ad": "",
}  # fmt: skip
# Cyrillic and Greek letters that look like Latin ones, as typed to slip a word past a filter ("pоrn" with a
# Cyrillic о). None of the analysed languages is written in these scripts, so folding them costs no real word.
_LOOKALIKES = dict(zip("аеорсухіјѕкмнтвԁɡοαει\u03baνρτυχ", "aeopcyxijskmhtbdgoaeikvptux", strict=True))
# Blocks folded: Latin-1, Latin Extended A and B, combining marks, Arabic, Latin Extended Additional, general
# punctuation (curly quotes, dashes, odd spaces), full-width forms ("ｐｏｒｎ").
_FOLDED_BLOCKS = ((0x80, 0x250), (0x300, 0x370), (0x600, 0x700), (0x1E00, 0x1F00), (0x2000, 0x2070), (0xFF01, 0xFF5F))


def _fold_char(char: str) -> str:
    folded = _MARKS.sub("", unicodedata.normalize("NFKD", char.casefold()))
    folded = "".join(_VARIANTS.get(c, c) for c in folded).casefold()
    # Symbols and punctuation outside ASCII separate words like ASCII ones do.
    return "".join(c if c.isascii() or c.isalnum() else " " for c in folded)


# What a character becomes after case folding, where that differs from the character itself.
_FOLD = {char: _fold_char(char) for start, end in _FOLDED_BLOCKS for char in map(chr, range(start, end))} | _VARIANTS
_FOLD |= _LOOKALIKES
_FOLD = {char: folded for char, folded in _FOLD.items() if folded != char}


def _fold(code: int) -> str:
    """A non-ASCII character folded: its case folding (which may be several characters), each then as `_FOLD`
    says. The C normaliser asks once per character it meets; ASCII it lower-cases itself."""
    return "".join(_FOLD.get(char, char) for char in chr(code).casefold())


# Numeric character references html.unescape does not read as their code point: its replacements (&#128; is "€",
# as browsers read it) and the code points it drops (control characters, non-characters).
_CHARREFS = dict.fromkeys(html._invalid_codepoints, "") | html._invalid_charrefs  # type: ignore[attr-defined]
_scan.configure(_fold, html.entities.html5, _CHARREFS)


def strip_markup(text: str) -> str:
    """The text a page shows: script, style and other unshown elements dropped, comments and inline tags removed,
    other tags made spaces, entities and JSON string escapes decoded."""
    return _scan.strip_markup(text)


def normalise_words(text: str) -> str:
    """Text without markup (a page's visible text, a search, a phrase) in matching form: ' word word … '."""
    return _scan.normalise(text, False)


def normalise_page(text: str) -> str:
    """A page in matching form: `normalise_words(strip_markup(text))` in one call."""
    return _scan.normalise(text, True)


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
