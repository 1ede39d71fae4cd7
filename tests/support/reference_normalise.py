"""The content normaliser as it was in Python (regular-expression passes), kept as the reference the C normaliser
(gateway/content/_scan.c) is checked against: tests/content/test_native_normalise.py feeds both the fixture pages
and random text and wants the same words. Not used by the gateway.

Steps: markup out (script and style contents dropped, tags removed, inline ones without a gap, entities and JSON
string escapes decoded), case folded, accents stripped, leetspeak decoded inside words, punctuation to spaces, runs
of single letters joined, repeated letters collapsed; see gateway/content/normalise.py.
"""

from __future__ import annotations

import html
import re

# The fold table is the product's own: the reference checks the passes, not the table.
from gateway.content.normalise import _FOLD

_DROPPED_ELEMENTS = re.compile(r"<(script|style|noscript|template|svg)\b[^>]*>.*?</\1\s*>", re.I | re.S)
_COMMENTS = re.compile(r"<!--.*?-->", re.S)
# Inline tags inside a word must not split it ("p<b></b>orn"); every other tag separates words. Lower and upper
# case are spelt out: a case-insensitive pattern is several times slower here.
_INLINE_NAMES = "a abbr b bdi bdo code em font i mark q s small span strong sub sup u wbr".split()
_INLINE_TAGS = re.compile(r"</?(?:%s)(?=[\s/>])[^>]*>" % "|".join(sorted({*_INLINE_NAMES, *map(str.upper, _INLINE_NAMES)},
                                                                       key=len, reverse=True)))  # fmt: skip
_TAGS = re.compile(r"</?[A-Za-z!][^>]*>")
# JSON string escapes: a JSON body must read like the page it fills ("\\u0142" is "ł", "\\n" a line break).
_JSON_ESCAPES = re.compile(r"\\(?:u([0-9a-fA-F]{4})|[nrtbf/\\\"])")

_FOLDABLE = re.compile("[%s]" % "".join(re.escape(char) for char in sorted(_FOLD)))

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s"})
# Runs of leet characters; only those touching a letter ("p0rn", "s3x", "@ss") are read as letters, so plain
# numbers and prices are left alone. A single character class scans about twice as fast as the pairs themselves.
_LEET_RUNS = re.compile(r"[0134578@$]+")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")
_LEET_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789@$")

_NON_WORD = re.compile(r"[\W_]+")
# The same for ASCII text, as one translation and a split: several times faster than the expression.
_ASCII_NON_WORD = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalnum()})
# Three or more single letters in a row: a word spelt out to dodge a filter ("p o r n" once dots became spaces).
_SPELT_OUT = re.compile(r"(?<!\S)\w(?: \w(?!\S)){2,}")
# The lookahead finds a doubled letter before anything is captured: most positions fail at once.
_REPEATS = re.compile(r"(?=(\w)\1)(\w)\2+")


def strip_markup(text: str) -> str:
    if "<" in text:
        text = _DROPPED_ELEMENTS.sub(" ", text)
        text = _COMMENTS.sub("", text)
        text = _INLINE_TAGS.sub("", text)
        text = _TAGS.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    if "\\" in text:
        text = _JSON_ESCAPES.sub(_unescape_json, text)
    return text


def _unescape_json(escape: re.Match[str]) -> str:
    code = escape.group(1)
    if code is None:
        return " "
    char = chr(int(code, 16))
    # Half of a surrogate pair (an emoji) is not a letter of any phrase.
    return " " if 0xD800 <= ord(char) <= 0xDFFF else char


def fold(text: str) -> str:
    """Case, accents and letter variants folded; punctuation, digits and spacing untouched."""
    text = text.casefold()
    if not text.isascii():
        text = _FOLDABLE.sub(lambda found: _FOLD[found.group()], text)
    return text


def decode_leet(text: str) -> str:
    """Leet characters read as letters in the words that mix them with letters; found by a cheap scan first,
    since most pages have none."""
    pieces: list[str] = []
    done = 0
    size = len(text)
    for run in _LEET_RUNS.finditer(text):
        start, end = run.start(), run.end()
        if start < done:
            continue
        if not ((start and text[start - 1] in _LETTERS) or (end < size and text[end] in _LETTERS)):
            continue
        while start > done and text[start - 1] in _LEET_WORD_CHARS:
            start -= 1
        while end < len(text) and text[end] in _LEET_WORD_CHARS:
            end += 1
        pieces += [text[done:start], text[start:end].translate(_LEET)]
        done = end
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def normalise_words(text: str) -> str:
    """Folded text (no markup) in matching form: ' word word … '."""
    text = decode_leet(fold(text))
    if text.isascii():
        text = " ".join(text.translate(_ASCII_NON_WORD).split())
    else:
        text = _NON_WORD.sub(" ", text).strip()
    text = _SPELT_OUT.sub(lambda m: m.group().replace(" ", ""), text)
    text = _REPEATS.sub(r"\2", text)
    return f" {text} "


def normalise_page(text: str) -> str:
    return normalise_words(strip_markup(text))


def normalise_phrase(phrase: str) -> str:
    """A phrase in the same form as the text it is matched against, without the padding spaces."""
    return normalise_words(phrase).strip()
