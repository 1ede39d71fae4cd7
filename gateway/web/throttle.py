"""Sign-in throttling that slows a guesser without letting anyone lock another person out.

Limits are counted per device (the real client address, see `client_address`) and per device and account
together; an account's own failures only add a short, bounded delay to each attempt on it. So a pupil who fails
again and again is stopped on their own device, while the headteacher signing in from theirs, even as the account
being guessed, still gets in at once (a second or two at most).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

from flask import current_app

# Per device: this many failures in the window stop its sign-ins to any account.
CLIENT_ATTEMPTS, CLIENT_WINDOW = 10, 300.0
# Per device and account: this many failures in the window stop that device trying that account.
CLIENT_ACCOUNT_ATTEMPTS, CLIENT_ACCOUNT_WINDOW = 5, 900.0
# An account with this many failures in a row answers each further attempt after a delay, doubling to the most.
SLOW_AFTER, FIRST_DELAY, MOST_DELAY = 5, 0.25, 2.0


class AttemptLimiter:
    def __init__(self, attempts: int, window: float) -> None:
        self.attempts = attempts
        self.window = window
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """False once `key` has failed `attempts` times within the window."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen[key]
            while seen and seen[0] < now - self.window:
                seen.popleft()
            if not seen:
                del self._seen[key]
            return len(seen) < self.attempts

    def failed(self, key: str) -> None:
        with self._lock:
            self._seen[key].append(time.monotonic())


class SignInThrottle:
    def __init__(self) -> None:
        self.by_client = AttemptLimiter(CLIENT_ATTEMPTS, CLIENT_WINDOW)
        self.by_client_account = AttemptLimiter(CLIENT_ACCOUNT_ATTEMPTS, CLIENT_ACCOUNT_WINDOW)

    def refusal(self, client: str, account: str) -> str | None:
        """Why this device may not try now ("device" or "account"), or None."""
        if not self.by_client.allow(client):
            return "device"
        if not self.by_client_account.allow(f"{client} {account}"):
            return "account"
        return None

    def failed(self, client: str, account: str) -> None:
        self.by_client.failed(client)
        self.by_client_account.failed(f"{client} {account}")


def throttle() -> SignInThrottle:
    return current_app.extensions.setdefault("gateway.sign_in_throttle", SignInThrottle())


def account_delay(failures_in_a_row: int) -> float:
    if failures_in_a_row < SLOW_AFTER:
        return 0.0
    return min(FIRST_DELAY * 2 ** (failures_in_a_row - SLOW_AFTER), MOST_DELAY)


def slow_down(failures_in_a_row: int) -> None:
    delay = account_delay(failures_in_a_row)
    if delay:
        time.sleep(delay)
