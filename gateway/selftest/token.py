"""The signed `X-Gateway-Selftest` token: which group (and year group) a self-test request is decided as, and the
one local test origin an allowed request may go to, until when.

Signed with the console's secret (the file `gateway run` gives both proxy and console), so only someone who can
read that file can mint one. A token lets nothing reach the internet: the proxy sends every allowed self-test
request to the token's origin and nowhere else.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeSerializer

HEADER = "X-Gateway-Selftest"
# The proxy's answer to a self-test request: the decision, as JSON, so a flag can be told from an allow.
RESULT_HEADER = "X-Gateway-Selftest-Result"
SALT = "gateway.selftest"
# A run takes seconds; a token seen later (copied from a capture) is worthless.
LIFETIME_SECONDS = 10 * 60


class BadToken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class SelftestToken:
    group: str
    year_group: int | None
    origin_host: str
    origin_port: int
    expires: float
    # Echoed on the proxy's answer: only the proxy, which took the token off the request, can know it.
    digest: str

    @property
    def origin(self) -> tuple[str, int]:
        return self.origin_host, self.origin_port


def read_secret(path: Path | str) -> str:
    """The console's secret as the console reads it (see `gateway.web.app`)."""
    return Path(path).read_text().strip()


def mint(secret: str, group: str, year_group: int | None, origin: tuple[str, int], *,
         lifetime: float = LIFETIME_SECONDS, now: float | None = None) -> str:  # fmt: skip
    expires = (time.time() if now is None else now) + lifetime
    claims = {"group": group, "year_group": year_group, "origin": [origin[0], origin[1]], "expires": expires}
    return URLSafeSerializer(secret, salt=SALT).dumps(claims)


def read(secret: str, text: str, *, now: float | None = None) -> SelftestToken:
    """The token's claims; BadToken if it was not signed with `secret`, is malformed or has expired."""
    try:
        claims = URLSafeSerializer(secret, salt=SALT).loads(text)
    except BadSignature:
        raise BadToken("not signed with this gateway's secret") from None
    try:
        group, year_group = claims["group"], claims["year_group"]
        host, port = claims["origin"]
        expires = float(claims["expires"])
    except (KeyError, TypeError, ValueError):
        raise BadToken("malformed claims") from None
    if not isinstance(group, str) or not isinstance(host, str) or not isinstance(port, int):
        raise BadToken("malformed claims")
    if year_group is not None and not isinstance(year_group, int):
        raise BadToken("malformed claims")
    if expires < (time.time() if now is None else now):
        raise BadToken("expired")
    return SelftestToken(group, year_group, host, port, expires, digest(text))


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]
