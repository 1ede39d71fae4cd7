"""The `uploads:` section: images and videos sent to social media from the school network.

"Staff, pupils and parents are not permitted to post any imagery or videos on personal accounts": an image or video
uploaded to a host on these lists is refused, except by the staff named as running the school's accounts, and only
from a school-owned device the headteacher approved (the device register). Those uploads are logged for the DPO.

The permission lives here, in the policy, not in the console: it is a standing role the school writes down once a
year (who runs its accounts), not a request decided case by case; the policy is the reviewed, audited document every
running gateway follows within seconds of `gateway policy reload`, and the proxy decides from it in memory.
"""

from __future__ import annotations

from pydantic import field_validator

from gateway.policy.model_base import Name, Strict


class Uploads(Strict):
    enabled: bool = True
    # Hosts whose image and video uploads are controlled: every host on these lists (the social-media lists, and
    # the upload endpoints those services post to, as a list of its own).
    lists: list[Name] = []
    # Roster usernames of the staff who run the school's social-media accounts.
    school_accounts: list[str] = []

    @field_validator("school_accounts")
    @classmethod
    def _usernames(cls, value: list[str]) -> list[str]:
        names = [v.strip().lower() for v in value]
        if any(not n or any(c.isspace() for c in n) for n in names):
            raise ValueError("each school account holder is one roster username")
        return names
