"""Reading list files: plain domain lists (the policy's `lists/*.txt`, UT1 `domains`) and UT1 `urls` files.

Reading never stops at a bad line: it is skipped, counted and reported with its file and line number. Importing
(`gateway lists import`) keeps the good lines of a source; a policy refuses a list file with any bad line (see
`gateway.policy.compiled`), because a corrupt file would otherwise quietly switch most of a list off.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.lists.hosts import CANONICAL_NAME_MATCH, MAX_HOST_LENGTH, normalise_host, normalise_url_prefix

# How many bad lines a parse keeps for its report; all are counted.
MAX_REPORTED_BAD_LINES = 50


@dataclass(frozen=True, slots=True)
class BadLine:
    source: str
    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}: {self.text!r}"


@dataclass(frozen=True, slots=True)
class ParsedList:
    """The entries of one list file, normalised and (unless asked otherwise) distinct, in file order, and what was
    wrong with it."""

    source: str
    entries: list[str]
    bad: tuple[BadLine, ...]
    bad_count: int


def read_domain_file(path: Path, *, distinct: bool = True) -> ParsedList:
    """A plain domain list: one domain a line (it covers its subdomains), `#` comments, blank lines ignored.

    `*.example.com` and `.example.com` are read as `example.com`; a line's trailing ` # comment` is ignored.
    With `distinct=False` repeated entries are kept (cheaper, for callers that deduplicate hashes anyway).
    """
    text, utf8 = _read_text(path)
    return parse_domain_lines(text, str(path), distinct=distinct, utf8=utf8)


def read_url_file(path: Path) -> ParsedList:
    """A UT1 `urls` file: one URL prefix a line without the scheme (`host/path`), `#` comment lines ignored."""
    text, utf8 = _read_text(path)
    return parse_url_lines(text.splitlines(), str(path), utf8=utf8)


def parse_domain_lines(text: str, source: str, *, distinct: bool = True, utf8: bool = True) -> ParsedList:
    """Parse the text of a domain list; `source` names it in bad-line reports. `utf8=False` says the text was
    decoded with replacement characters, so lines holding one are reported as not UTF-8."""
    lines = text.lower().split("\n")
    entries: list[str] = []
    append = entries.append
    bad = _BadLines(source)
    # Binary content is rare: look for it line by line only when the file has some.
    may_be_binary = not utf8 or "\0" in text
    # Most lines are already canonical: one regex instead of a normalise_host call each.
    canonical = CANONICAL_NAME_MATCH
    for number, line in enumerate(lines, 1):
        if canonical(line) and len(line) <= MAX_HOST_LENGTH:
            append(line)
            continue
        if may_be_binary and (reason := _binary_content(line, utf8)) is not None:
            bad.add(number, line.strip(), reason)
            continue
        domain = _domain_from_line(line.strip())
        if domain is None:
            continue
        host = normalise_host(domain)
        if host is None:
            bad.add(number, line.strip(), "not a valid domain")
        else:
            append(host)
    return ParsedList(source, list(dict.fromkeys(entries)) if distinct else entries, tuple(bad.kept), bad.count)


def parse_url_lines(lines: Iterable[str], source: str, *, utf8: bool = True) -> ParsedList:
    """Parse the lines of a URL list; `source` names it in bad-line reports (see `parse_domain_lines`)."""
    entries: list[str] = []
    bad = _BadLines(source)
    for number, raw in enumerate(lines, 1):
        reason = _binary_content(raw, utf8)
        if reason is not None:
            bad.add(number, raw.strip(), reason)
            continue
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry = normalise_url_prefix(line)
        if entry is None:
            bad.add(number, line, "not a valid URL entry")
        else:
            entries.append(entry)
    return ParsedList(source, list(dict.fromkeys(entries)), tuple(bad.kept), bad.count)


def _domain_from_line(line: str) -> str | None:
    """The domain on a non-canonical line, or None for a blank or comment line."""
    if not line or line.startswith("#"):
        return None
    for mark in (" #", "\t#"):
        cut = line.find(mark)
        if cut >= 0:
            line = line[:cut].rstrip()
    if line.startswith("*."):
        return line[2:]
    if line.startswith(".") and len(line) > 1:
        return line[1:]
    return line


def _read_text(path: Path) -> tuple[str, bool]:
    """The file's text, and whether it was valid UTF-8. A stray non-UTF-8 byte spoils its own line (reported as
    bad), not the file."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), False


def _binary_content(line: str, utf8: bool) -> str | None:
    """Why a line (comments included) is binary content, or None. `utf8=False`: the file was decoded with
    replacement characters."""
    if "\0" in line:
        return "binary content (NUL byte)"
    if not utf8 and "\ufffd" in line:
        return "not UTF-8 text"
    return None


class _BadLines:
    __slots__ = ("source", "kept", "count")

    def __init__(self, source: str) -> None:
        self.source = source
        self.kept: list[BadLine] = []
        self.count = 0

    def add(self, line: int, text: str, reason: str) -> None:
        self.count += 1
        if len(self.kept) < MAX_REPORTED_BAD_LINES:
            self.kept.append(BadLine(self.source, line, text[:200], reason))
