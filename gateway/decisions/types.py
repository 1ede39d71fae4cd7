"""The values the decision engine speaks in: actions, period kinds and the decision itself."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Action(enum.StrEnum):
    ALLOW = "allow"
    BLOCK = "block"
    # Allowed, but reported to the e-safety officer.
    FLAG = "flag"


class PeriodKind(enum.StrEnum):
    LESSON = "lesson"
    BREAK = "break"
    LUNCH = "lunch"
    BEFORE_SCHOOL = "before_school"
    AFTER_SCHOOL = "after_school"
    WEEKEND = "weekend"
    # Half terms and the gaps between terms.
    HOLIDAY = "holiday"
    # INSET days and bank holidays that fall inside a term.
    CLOSURE = "closure"


# Where in the fixed precedence a decision came from.
class Source(enum.StrEnum):
    ILLEGAL = "illegal"
    EXCEPTION = "exception"
    RULE = "rule"
    DEFAULT = "default"
    # The gateway's own checks on the connection: ports, internal addresses, mismatched names, raw tunnels.
    CONNECTION = "connection"
    # Deciding failed; the request is blocked rather than let through unchecked.
    FAILURE = "failure"
    # Content analysis of the page or the search terms (list names the category, matched the strongest phrase).
    CONTENT = "content"
    # A circumvention detector (DoH, bare addresses, no SNI, tunnels, fronting, VPN clients, bursts).
    CIRCUMVENTION = "circumvention"
    # The person is on supervised-only access (a ban) and no supervised session is running.
    BAN = "ban"
    # The person is below the site's minimum age for signing up (or, as the policy chooses, for the site).
    AGE = "age"
    # An image or video upload to social media without the standing permission to run the school's accounts.
    UPLOAD = "upload"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    source: Source
    reason: str
    period: PeriodKind
    host: str
    rule: str | None = None
    # The policy list (or UT1 category) that matched, and the entry in it.
    list: str | None = None
    matched: str | None = None

    @property
    def blocked(self) -> bool:
        return self.action is Action.BLOCK

    def as_dict(self) -> dict[str, str | None]:
        return {
            "action": self.action.value,
            "source": self.source.value,
            "rule": self.rule,
            "list": self.list,
            "matched": self.matched,
            "reason": self.reason,
            "period": self.period.value,
            "host": self.host,
        }
