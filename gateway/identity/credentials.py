"""Captive-portal credentials: argon2-hashed passwords and picture codes, and QR-card secrets.

A picture code is a sequence of pictures a young pupil taps (four from twelve: 20,736 codes, so the portal's
per-user rate limit matters as much as the hash). A QR card carries a long random secret; only its SHA-256
is stored (it has far too much entropy to need a slow hash, and a lookup by hash finds the pupil).
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

PICTURES: dict[str, str] = {
    "cat": "🐱", "dog": "🐶", "fish": "🐟", "star": "⭐", "tree": "🌳", "sun": "☀️",
    "moon": "🌙", "car": "🚗", "boat": "⛵", "apple": "🍎", "ball": "⚽", "house": "🏠",
}
PICTURE_CODE_LENGTH = 4

_hasher = PasswordHasher()


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(stored: str | None, secret: str) -> bool:
    """Constant work whether or not there is a stored hash, so timing does not reveal who has one."""
    if not stored:
        _verify(_DUMMY, secret)
        return False
    return _verify(stored, secret)


def _verify(stored: str, secret: str) -> bool:
    try:
        return _hasher.verify(stored, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_DUMMY = _hasher.hash(secrets.token_hex(8))


def new_picture_code() -> list[str]:
    names = list(PICTURES)
    return [secrets.choice(names) for _ in range(PICTURE_CODE_LENGTH)]


def picture_code_text(pictures: list[str]) -> str:
    """The canonical form that is hashed: the pictures' names, space separated."""
    if len(pictures) != PICTURE_CODE_LENGTH or any(p not in PICTURES for p in pictures):
        raise ValueError("not a picture code")
    return " ".join(pictures)


def new_card_token() -> str:
    return secrets.token_urlsafe(24)


def card_token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
