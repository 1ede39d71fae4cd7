"""VPN and anonymiser clients by their User-Agent: fragments read from data files (policies/circumvention/), one
search over one alternation, and the answer kept per User-Agent (a school's devices send a few dozen)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

BUILT_IN = Path(__file__).resolve().parents[2] / "policies" / "circumvention" / "vpn_user_agents.txt"
# Distinct User-Agents remembered; past it the memory starts again.
MAX_REMEMBERED = 4096


class BadFragmentFile(ValueError):
    pass


def read_fragments(path: Path) -> list[str]:
    """The fragments of a file: lower-cased lines, comments and blank lines left out."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadFragmentFile(f"{path}: {exc}") from None
    fragments = []
    for number, line in enumerate(text.splitlines(), 1):
        fragment = line.partition("#")[0].strip().lower()
        if not fragment:
            continue
        if len(fragment) < 4:
            raise BadFragmentFile(f"{path}, line {number}: {fragment!r} is too short to tell a VPN client apart")
        fragments.append(fragment)
    return fragments


class UserAgentMatcher:
    def __init__(self, fragments: Iterable[str]) -> None:
        ordered = sorted(set(fragments), key=len, reverse=True)
        self.fragments = tuple(ordered)
        self._search = re.compile("|".join(map(re.escape, ordered))).search if ordered else None
        self._seen: dict[str, str | None] = {}

    def match(self, user_agent: str) -> str | None:
        """The fragment a User-Agent carries, or None."""
        if self._search is None or not user_agent:
            return None
        try:
            return self._seen[user_agent]
        except KeyError:
            pass
        found = self._search(user_agent.lower())
        if len(self._seen) >= MAX_REMEMBERED:
            self._seen.clear()
        fragment = self._seen[user_agent] = found.group(0) if found else None
        return fragment
