"""Reading the content analysis data files: weighted phrase lists and misspelling tables.

A phrase file is refused whole if any line is bad (like a list file): a corrupt file's good lines are not the
list the school meant. Each bad line is named with its file and line.

Phrase file format: one phrase a line, `weight phrase` (a tab or spaces between), `#` starts a comment line,
blank lines are ignored. The weight is a whole number from -20 to 20, not 0; a negative weight marks mitigating
context ("suicide prevention", "helpline") that lowers the score. Misspelling file format: `misspelling correct`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.content.normalise import normalise_phrase
from gateway.lists.files import BadLine

MAX_WEIGHT = 20
MAX_PHRASE_LENGTH = 120
# A phrase shorter than this once normalised would match ordinary words ("as", "xx"). Arabic-script words are
# written without short vowels, so a real word there may have two letters.
MIN_NORMALISED_LENGTH = 3
MIN_NORMALISED_LENGTH_NON_LATIN = 2
MAX_FILE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Phrase:
    # As the file writes it: what a report shows.
    text: str
    normalised: str
    weight: int


@dataclass(frozen=True, slots=True)
class ParsedFile:
    phrases: tuple[Phrase, ...]
    bad: tuple[BadLine, ...]


def _lines(path: Path) -> tuple[list[str], list[BadLine]]:
    data = path.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        return [], [BadLine(str(path), 1, "", f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return [], [BadLine(str(path), line, "", "not UTF-8 text")]
    if "\0" in text:
        line = text[: text.index("\0")].count("\n") + 1
        return [], [BadLine(str(path), line, "", "binary content")]
    return text.split("\n"), []


def read_phrase_file(path: Path) -> ParsedFile:
    lines, bad = _lines(path)
    phrases: list[Phrase] = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue

        def refuse(reason: str) -> None:
            bad.append(BadLine(str(path), number, line[:80], reason))

        weight_text, _, phrase = line.replace("\t", " ").partition(" ")
        phrase = " ".join(phrase.split())
        try:
            weight = int(weight_text)
        except ValueError:
            refuse("expected `weight phrase` with a whole-number weight first")
            continue
        if not phrase:
            refuse("a weight with no phrase")
        elif weight == 0 or abs(weight) > MAX_WEIGHT:
            refuse(f"the weight must be from -{MAX_WEIGHT} to {MAX_WEIGHT}, not 0")
        elif len(phrase) > MAX_PHRASE_LENGTH:
            refuse(f"a phrase longer than {MAX_PHRASE_LENGTH} characters")
        elif len(normalised := normalise_phrase(phrase)) < (shortest := _shortest(normalised)):
            refuse(f"the phrase is shorter than {shortest} letters once normalised ({normalised!r})")
        else:
            phrases.append(Phrase(phrase, normalised, weight))
    return ParsedFile(tuple(phrases), tuple(bad))


def _shortest(normalised: str) -> int:
    return MIN_NORMALISED_LENGTH if normalised.isascii() else MIN_NORMALISED_LENGTH_NON_LATIN


def read_misspelling_file(path: Path) -> tuple[dict[str, set[str]], tuple[BadLine, ...]]:
    """Correct word (normalised) -> its misspellings (normalised)."""
    lines, bad = _lines(path)
    table: dict[str, set[str]] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        wrong, right = (normalise_phrase(w) for w in words) if len(words) == 2 else ("", "")
        if not wrong or not right or " " in wrong or " " in right:
            bad.append(BadLine(str(path), number, line[:80], "expected `misspelling correct`, one word each"))
        elif wrong != right:
            table.setdefault(right, set()).add(wrong)
    return table, tuple(bad)
