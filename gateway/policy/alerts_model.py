"""Who the gateway e-mails about reports, for which categories at once, and when the weekly digest goes.

The policy: inappropriate content accessed "will be reported to the e-safety officer". High-risk categories
(self-harm, suicide, extremism, attempts at child-abuse material) cannot wait for the officer to open the queue:
they are mailed as they happen, once per person and category within the dedup window, so a pupil who meets the
same thing ten times in an hour makes one e-mail and ten rows in the queue. Everything else waits for the digest.
"""

from __future__ import annotations

from datetime import time
from typing import Annotated, Literal

from pydantic import Field

from gateway.policy.model_base import Name, Strict

# Deliberately loose (like the roster's): the mail server is the judge of an address; this catches a name typed
# where an address belongs.
Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")]
DigestDay = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

HIGH_RISK_CATEGORIES = ("self_harm", "suicide", "extremism", "child_abuse", "terrorism")
# Categories of an illegal-list attempt (which list it was on), as the store names them.
ILLEGAL_CATEGORIES = ("child_abuse", "terrorism")
# What a person may say was wrong with a page on "Report this page", in words a pupil can read. The keys are the
# content analyser's categories where there is one, so reports and findings count together in the digest.
PERSON_CATEGORIES = {
    "self_harm": "Self-harm",
    "suicide": "Suicide",
    "extremism": "Extremism or terrorism",
    "hate": "Hate or bullying because of who someone is",
    "bullying": "Bullying or threats",
    "adult": "Sexual or adult content",
    "child_abuse": "Sexual content involving children",
    "violence": "Violence or gore",
    "weapons": "Weapons",
    "drugs": "Drugs or alcohol",
    "gambling": "Gambling",
    "scam": "A scam, phishing or a virus",
    "wrongly_blocked": "It is blocked but should not be",
    "other": "Something else",
}


class Alerts(Strict):
    # The e-safety officer's (and deputies') addresses: the immediate alerts and the weekly digest go to them.
    # Empty: no e-mail is sent; reports still wait in the console's queue.
    recipients: list[Email] = Field(default=[], max_length=20)
    # Categories mailed at once: a page or search content analysis flags or blocks, a flag rule's list, a page a
    # person reports (an illegal-list attempt always alerts). Each must be a content category, a list, or a
    # category "Report this page" offers.
    high_risk: list[Name] = list(HIGH_RISK_CATEGORIES)
    # A later report of the same person and category within this many hours is not mailed again (it is in the
    # queue and counted in the digest).
    dedup_hours: int = Field(default=24, ge=0, le=24 * 14)
    digest: bool = True
    digest_day: DigestDay = "monday"
    # School-local time (school.timezone) the digest goes out on its day.
    digest_time: time = time(7, 30)

    def is_high_risk(self, category: str | None) -> bool:
        return category is not None and category in self.high_risk
