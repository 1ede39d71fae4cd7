"""How many wrong proxy passwords a device may send, on the console's model (`gateway.web.throttle`): limits per
device (the client address the proxy sees) and per device and account, so a pupil guessing is stopped on their
own device while the account's owner, on theirs, still gets in; an account's own failures only slow each attempt on
it a little, so nobody can lock another person out. Pure: the counts come from `gateway.identity.sign_in_failures`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Per device: this many failures in the window stop its sign-ins to any account.
CLIENT_ATTEMPTS, WINDOW = 10, 300.0
# Per device and account: this many failures in the account window (ACCOUNT_WINDOW_FACTOR windows) stop that
# device trying that account.
CLIENT_ACCOUNT_ATTEMPTS, ACCOUNT_WINDOW_FACTOR = 5, 3
# An account with this many failures in the account window (from any device) answers each further attempt after a
# delay, doubling to the most.
SLOW_AFTER, FIRST_DELAY, MOST_DELAY = 5, 0.25, 2.0


class Refusal(StrEnum):
    DEVICE = "device"
    ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class FailureCounts:
    """Failures still counted: from the device, from the device for this account, and for the account anywhere."""

    client: int = 0
    client_account: int = 0
    account: int = 0

    def most(self, other: FailureCounts) -> FailureCounts:
        return FailureCounts(max(self.client, other.client), max(self.client_account, other.client_account),
                             max(self.account, other.account))


@dataclass(frozen=True, slots=True)
class AttemptLimits:
    window: float = WINDOW
    client_attempts: int = CLIENT_ATTEMPTS
    client_account_attempts: int = CLIENT_ACCOUNT_ATTEMPTS

    @property
    def account_window(self) -> float:
        return self.window * ACCOUNT_WINDOW_FACTOR

    def refusal(self, counts: FailureCounts) -> Refusal | None:
        if counts.client >= self.client_attempts:
            return Refusal.DEVICE
        if counts.client_account >= self.client_account_attempts:
            return Refusal.ACCOUNT
        return None

    def refused_for(self, refusal: Refusal) -> float:
        """Seconds at most until a refused device may try again."""
        return self.window if refusal is Refusal.DEVICE else self.account_window


def account_delay(counts: FailureCounts) -> float:
    if counts.account < SLOW_AFTER:
        return 0.0
    return min(FIRST_DELAY * 2 ** (counts.account - SLOW_AFTER), MOST_DELAY)
