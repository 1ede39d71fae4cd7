"""Console accounts: creating them and checking passwords (argon2id), counting failures in a row.

There is no lock-out here: a lock anyone can trigger lets a pupil lock the headteacher out. The console slows
guessing per device and adds a short delay per account instead (`gateway.web.throttle`)."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.store.models.users import ConsoleUser, Role

MIN_PASSWORD_LENGTH = 10
# As the policy's `school.site` (`gateway.policy.model_base.Name`).
SITE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

_hasher = PasswordHasher()
# Verified against when the username is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    pass


def create_user(session: Session, username: str, display_name: str, role: str, password: str,
                sites: tuple[str, ...] = ()) -> ConsoleUser:  # fmt: skip
    """A console account; `sites` limits what it sees to those sites of a trust (none: every site)."""
    username = username.strip().lower()
    site_text = site_list(sites)
    if not username or len(username) > 128:
        raise AccountError("a username is 1 to 128 characters")
    if role not in Role.__members__.values():
        raise AccountError(f"role must be one of {', '.join(Role)}; pupils and guests have no console accounts")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a console password is at least {MIN_PASSWORD_LENGTH} characters")
    if session.scalar(select(ConsoleUser).where(ConsoleUser.username == username)):
        raise AccountError(f"there is already a console account called {username}")
    now = datetime.now(UTC)
    user = ConsoleUser(
        username=username,
        display_name=display_name or username,
        role=role,
        password_hash=_hasher.hash(password),
        active=True,
        failed_logins=0,
        created_at=now,
        password_changed_at=now,
        sites=site_text,
    )
    session.add(user)
    return user


def site_list(sites: tuple[str, ...]) -> str:
    """The `sites` column for these site names (as the policy's `school.site` spells them), space separated."""
    names = sorted({s.strip() for s in sites if s.strip()})
    for name in names:
        if not SITE_NAME.fullmatch(name):
            raise AccountError(f"{name!r} is not a site name (letters, digits, '-' and '_', as the policy's school.site)")
    text = " ".join(names)
    if len(text) > 255:
        raise AccountError("too many sites for one account: leave them out for a trust-wide account")
    return text


def set_sites(session: Session, username: str, sites: tuple[str, ...]) -> ConsoleUser:
    user = session.scalar(select(ConsoleUser).where(ConsoleUser.username == username.strip().lower()))
    if user is None:
        raise AccountError(f"there is no console account called {username}")
    user.sites = site_list(sites)
    return user


def count_users(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ConsoleUser)) or 0


def authenticate(session: Session, username: str, password: str, *, now: datetime) -> tuple[ConsoleUser | None, str]:
    """(user, "") on success, else (user or None, why). Updates failure counts; the caller commits."""
    user = session.scalar(select(ConsoleUser).where(ConsoleUser.username == username.strip().lower()))
    if user is None:
        _verify(_DUMMY_HASH, password)
        return None, "unknown username"
    if not user.active:
        _verify(_DUMMY_HASH, password)
        return user, "account disabled"
    if not _verify(user.password_hash, password):
        user.failed_logins += 1
        return user, "wrong password"
    user.failed_logins = 0
    user.last_login_at = now
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user, ""


def failures_in_a_row(session: Session, username: str) -> int:
    """Wrong passwords for the account since its last sign-in (0 for a name that is not an account)."""
    count = session.scalar(select(ConsoleUser.failed_logins).where(ConsoleUser.username == username.strip().lower()))
    return count or 0


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False
