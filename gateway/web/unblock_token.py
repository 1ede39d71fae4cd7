"""The signed, expiring token that carries an unblock request's requester, URL and rule from the form the console
served to the post that submits it.

The console mints it from what it found itself (the device's address, who the gateway knows is on it, the
decision for the URL), so a post cannot name another person, another page or another rule, and a token copied to
another device names the wrong address.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SALT = "gateway.unblock-request"
# Long enough to think about why, short enough that an old form is not a lasting licence.
LIFETIME_SECONDS = 60 * 60


class BadToken(Exception):
    pass


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def mint(claims: dict[str, Any]) -> str:
    return _serializer().dumps(claims)


def read(token: str, client_ip: str) -> dict[str, Any]:
    try:
        claims = _serializer().loads(token, max_age=LIFETIME_SECONDS)
    except SignatureExpired:
        raise BadToken("This request form has expired. Go back to the blocked page and ask again.") from None
    except BadSignature:
        raise BadToken("This request form has been changed, so it cannot be sent.") from None
    if not isinstance(claims, dict) or claims.get("ip") != client_ip:
        raise BadToken("This request form was made for another device. Ask from your own device.")
    return claims
