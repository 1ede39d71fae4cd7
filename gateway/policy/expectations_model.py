"""A decision the policy must keep giving: who, when, which address, and the action expected.

`gateway policy validate` and every reload run these cases (`gateway.policy.expectations`); a policy that breaks one
is refused, so a change cannot quietly open Facebook to pupils or block BBC Bitesize.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from gateway.decisions.types import Action, PeriodKind
from gateway.lists.hosts import normalise_host
from gateway.policy.model_base import Name, Strict


class ExpectedDecision(Strict):
    group: Name
    year_group: int | None = None
    # A roster username, for exceptions that name users.
    user: str | None = Field(default=None, min_length=1, max_length=128)
    # A school-local date and time, or a kind of period: a lesson, break, lunch, before or after school on a Monday
    # of the first term; a weekend, holiday or closure day at noon (the first in or after the first term).
    at: datetime | PeriodKind
    url: str = Field(min_length=1, max_length=2048)
    action: Action
    # Why the school wants this decision, shown when the case fails.
    why: str = ""

    @field_validator("url")
    @classmethod
    def _readable_url(cls, value: str) -> str:
        text = value if "://" in value else f"http://{value}"
        try:
            host = urlsplit(text).hostname
        except ValueError:
            host = None
        if not host or normalise_host(host) is None:
            raise ValueError(f"not a URL or host: {value!r}")
        return value

    @field_validator("user")
    @classmethod
    def _lower_case(cls, value: str | None) -> str | None:
        # Roster usernames are stored lower case.
        return value.strip().lower() if value is not None else None
