"""The recent unblock requests, indexed for the block page: what has this person (or this device) asked about
this host? Pure, and a few dict lookups per blocked page.

A person is their roster username; a device nobody is signed in on is its address, matched only against the
requests typed on that address by nobody signed in (as the request form lists them). No one sees another person's
request.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.identity.types import Identity
from gateway.store.request_outcomes import RequestOutcome

Who = tuple[str, str]


def _who(username: str | None, client_ip: str | None) -> Who | None:
    if username:
        return ("user", username)
    if client_ip:
        return ("device", client_ip)
    return None


class EarlierRequests:
    def __init__(self, outcomes: Iterable[RequestOutcome] = ()) -> None:
        # Newest last in `outcomes`, so each key keeps the newest request.
        self._asked: dict[tuple[Who, str], RequestOutcome] = {}
        self._sites: dict[tuple[Who, str], RequestOutcome] = {}
        for outcome in outcomes:
            who = _who(outcome.username, outcome.client_ip)
            assert who is not None  # the store always keeps the address
            self._asked[(who, outcome.host)] = outcome
            if outcome.whole_site:
                self._sites[(who, outcome.site)] = outcome

    def __len__(self) -> int:
        return len(self._asked)

    def latest(self, identity: Identity, host: str) -> RequestOutcome | None:
        """The newest request by this person about `host` itself, or about the whole of a site `host` is in."""
        who = _who(identity.username, identity.client_ip)
        if who is None or not self._asked:
            return None
        found = [self._asked.get((who, host))]
        suffix = host
        while True:
            found.append(self._sites.get((who, suffix)))
            dot = suffix.find(".")
            if dot < 0:
                break
            suffix = suffix[dot + 1:]
        return max((f for f in found if f is not None), key=lambda f: f.number, default=None)
