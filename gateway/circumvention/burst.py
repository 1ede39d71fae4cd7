"""A burst: one person trying several workaround sites in a short time (working through a list of proxies or
mirrors). Attempts are counted per person over a sliding window, by site, so one site's many hosts count once."""

from __future__ import annotations

from collections import deque

# People followed at once before those with nothing in their window are forgotten.
MAX_PEOPLE = 10_000


class BurstCounter:
    def __init__(self, attempts: int, seconds: float) -> None:
        self.attempts = attempts
        self.seconds = seconds
        self._recent: dict[str, deque[tuple[float, str]]] = {}

    def add(self, person: str, site: str, now: float) -> list[str] | None:
        """Count an attempt; the sites of the burst when this attempt completes one (the window then starts
        again, so a burst is reported once), else None."""
        recent = self._recent.get(person)
        if recent is None:
            if len(self._recent) >= MAX_PEOPLE:
                self._forget(now)
            recent = self._recent[person] = deque()
        while recent and recent[0][0] <= now - self.seconds:
            recent.popleft()
        recent.append((now, site))
        sites = list(dict.fromkeys(s for _, s in recent))
        if len(sites) < self.attempts:
            if len(recent) > 4 * self.attempts:
                # The same few sites again and again: keep the latest attempt of each.
                latest = {s: t for t, s in recent}
                recent.clear()
                recent.extend(sorted((t, s) for s, t in latest.items()))
            return None
        del self._recent[person]
        return sites

    def _forget(self, now: float) -> None:
        stale = [p for p, recent in self._recent.items() if not recent or recent[-1][0] <= now - self.seconds]
        for person in stale:
            del self._recent[person]
        if len(self._recent) >= MAX_PEOPLE:
            self._recent.clear()
