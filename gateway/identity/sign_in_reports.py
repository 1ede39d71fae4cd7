"""What the e-safety officer is told about wrong proxy passwords: one audit row per device and account per window
("12 failed proxy sign-ins for account x from 10.1.2.3 in 5 min, limited"), never one per attempt, so a script
guessing at staff passwords is seen without flooding the audit trail. The passwords typed are never here.

Pure: the proxy tells it each wrong password and each attempt refused over the limit, and asks for the windows that
have ended. Bounded: past `MOST_ACCOUNTS` accounts from one device in a window, the rest are counted together, and
past `MOST_OPEN` open windows, further devices too, so a guesser minting usernames or addresses gets one more row,
not one each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.identity.attempt_limits import CLIENT_ATTEMPTS, Refusal

# Accounts named apart per device and window: as many as the device may get wrong before it is refused outright, so
# every account whose password was actually tried has its own row.
MOST_ACCOUNTS = CLIENT_ATTEMPTS
# Windows open at once, all devices together.
MOST_OPEN = 2000
# The usernames typed are cut to this: enough to name an account, never a paragraph.
MOST_NAME = 64

Key = tuple[str | None, str | None]
LIMITED = {
    Refusal.DEVICE: "too many wrong passwords from this device",
    Refusal.ACCOUNT: "too many wrong passwords for this account from this device",
}


@dataclass(slots=True)
class Window:
    address: str | None
    username: str | None
    started: float
    wrong: int = 0
    refused: int = 0
    limits: set[Refusal] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Report:
    """A window that has ended: what the audit row says."""

    address: str | None
    username: str | None
    wrong: int
    refused: int
    limited: tuple[Refusal, ...]
    seconds: float

    @property
    def target(self) -> str:
        return f"person:{self.username}" if self.username is not None else "people"

    def summary(self) -> str:
        attempts = self.wrong + self.refused
        who = f"account {self.username}" if self.username is not None else "other accounts"
        where = f"from {self.address}" if self.address is not None else "from other devices"
        text = f"{attempts} failed proxy sign-in{'s' * (attempts != 1)} for {who} {where} in {_span(self.seconds)}"
        if self.limited:
            why = "; ".join(LIMITED[r] for r in self.limited)
            text += f", limited: {self.refused} turned away without checking the password ({why})"
        return text

    def detail(self) -> dict[str, object]:
        return {"summary": self.summary(), "wrong_passwords": self.wrong, "refused": self.refused,
                "limited": [str(r) for r in self.limited], "window_seconds": self.seconds}  # fmt: skip


def _span(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class SignInReports:
    def __init__(self, window: float) -> None:
        self.window = window
        self._open: dict[Key, Window] = {}
        self._accounts: dict[str, int] = {}

    def wrong(self, address: str, username: str, now: float) -> None:
        """A password checked and found wrong."""
        self._window(address, username, now).wrong += 1

    def refused(self, address: str, username: str, refusal: Refusal, now: float) -> None:
        """An attempt turned away over the limit, its password not checked."""
        window = self._window(address, username, now)
        window.refused += 1
        window.limits.add(refusal)

    def ended(self, now: float) -> list[Report]:
        """The windows that have ended by `now`, taken out."""
        done = [key for key, w in self._open.items() if now - w.started >= self.window]
        return [self._take(key) for key in done]

    def all(self) -> list[Report]:
        """Every window, ended or not (the proxy is stopping)."""
        return [self._take(key) for key in list(self._open)]

    def _window(self, address: str, username: str, now: float) -> Window:
        key: Key = (address, username.strip().lower()[:MOST_NAME])
        if key not in self._open:
            if self._accounts.get(address, 0) >= MOST_ACCOUNTS:
                key = (address, None)
            if key not in self._open and len(self._open) >= MOST_OPEN:
                key = (None, None)
        window = self._open.get(key)
        if window is None:
            window = self._open[key] = Window(key[0], key[1], now)
            if key[0] is not None and key[1] is not None:
                self._accounts[key[0]] = self._accounts.get(key[0], 0) + 1
        return window

    def _take(self, key: Key) -> Report:
        w = self._open.pop(key)
        if w.address is not None and w.username is not None:
            left = self._accounts[w.address] - 1
            if left:
                self._accounts[w.address] = left
            else:
                del self._accounts[w.address]
        return Report(w.address, w.username, w.wrong, w.refused, tuple(sorted(w.limits)), self.window)
