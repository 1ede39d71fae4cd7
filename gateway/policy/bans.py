"""The supervised-only bans in force, as the decision engine reads them (pure: no proxy, no database).

A ban is on a person: it applies to whoever is signed in under a banned username, on any device, and to a device
assigned to a banned person when nobody is signed in on it. It blocks everything (after the illegal-content lists,
which keep their own reason) except the gateway's own pages a pupil still needs: the portal (to sign in and out)
and the report page (to tell the officer something worried them), with their styles. A supervised session lets the
person through under the normal rules until it ends.

Ends are checked against the real time at each decision, not the gateway's clock: the clock can be pinned or moved
for a rehearsal of the timetable, and that must neither end a ban nor stretch a teacher's supervised session. So a
ban stops at its end and a session runs out with no change in the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote

from gateway.identity.types import Identity

BAN_REASON = (
    "You are on supervised-only access: you can use the internet at school only while a teacher is with you. "
    "Please ask your teacher."
)
# The gateway's own pages a banned person can still reach, at the gateway's public address: signing in and out
# (so a shared device can be handed on) and reporting a page that worried them.
OWN_PAGES = ("/portal", "/report", "/static")


@dataclass(frozen=True, slots=True)
class BanEntry:
    ban_id: int
    # Seconds since the epoch; None: until lifted.
    ends_at: float | None
    # The end of the running supervised session, if any.
    supervised_until: float | None

    def blocks(self, now: float) -> bool:
        if self.ends_at is not None and now >= self.ends_at:
            return False
        return self.supervised_until is None or now >= self.supervised_until


def _nobody(_device: str) -> str | None:
    return None


def entry(ban_id: int, ends_at: datetime | None, supervised_until: datetime | None) -> BanEntry:
    return BanEntry(ban_id, ends_at.timestamp() if ends_at else None,
                    supervised_until.timestamp() if supervised_until else None)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BanSet:
    # Username (as the roster keeps it: lower case) -> its ban.
    bans: Mapping[str, BanEntry]
    # The gateway's own host (its public URL's), whose `OWN_PAGES` stay reachable.
    own_host: str | None = None
    # A device's name -> the username it is assigned to, if any.
    device_owner: Callable[[str], str | None] = _nobody
    clock: Callable[[], float] = field(default=time.time)

    def __bool__(self) -> bool:
        return bool(self.bans)

    def ban_of(self, identity: Identity) -> BanEntry | None:
        """The ban that stops this person now, if any (a supervised session or the ban's end lets them through)."""
        username = identity.username
        if username is None and identity.device is not None:
            username = self.device_owner(identity.device)
        if username is None:
            return None
        ban = self.bans.get(username.lower())
        return ban if ban is not None and ban.blocks(self.clock()) else None

    def blocking(self, identity: Identity, host: str, path: str) -> BanEntry | None:
        """The ban that blocks this request or connection (`path` empty), if any."""
        ban = self.ban_of(identity)
        if ban is None or self.own_page(host, path):
            return None
        return ban

    def own_page(self, host: str, path: str) -> bool:
        """Whether this is one of the gateway's own pages a banned person may reach. A connection to the gateway
        (no path yet) is let through; each request in it is then judged by its path."""
        if host != self.own_host:
            return False
        if not path:
            return True
        path = unquote(path.partition("?")[0])
        if ".." in path:
            return False  # "/portal/../logs" is not a portal page, however the web app would read it
        return any(path == page or path.startswith(page + "/") for page in OWN_PAGES)
