"""Console sessions held on the server. The signed cookie carries only a random token; the user loader finds the
account through the token's row, so a cookie copied before sign-out, a password change or an expiry signs nobody
in, whatever its signature and expiry say."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from flask import current_app, session
from sqlalchemy import delete
from sqlalchemy.orm import Session

from gateway.store.models.console_sessions import ConsoleSession
from gateway.store.models.users import ConsoleUser
from gateway.web.client_address import client_ip

SESSION_KEY = "console_session"
# last_seen_at is rewritten at most this often: a page's own requests do not each cost a write.
TOUCH_EVERY = timedelta(seconds=15)


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(store: Session, user: ConsoleUser) -> None:
    """A new server-side session for `user`, its token in the cookie; the caller has cleared the old cookie."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    config = current_app.config["GATEWAY"]
    # Sessions nobody came back to are cleared here, so the table holds little more than the live ones.
    store.execute(delete(ConsoleSession).where((ConsoleSession.last_seen_at < now - config.session_idle)
                                               | (ConsoleSession.started_at < now - config.session_max)))
    store.add(ConsoleSession(token_sha256=_sha256(token), user_id=user.id, started_at=now, last_seen_at=now,
                             client_ip=client_ip()))  # fmt: skip
    store.commit()
    session[SESSION_KEY] = token


def _row(store: Session) -> ConsoleSession | None:
    token = session.get(SESSION_KEY)
    return store.get(ConsoleSession, _sha256(token)) if isinstance(token, str) else None


def end_if_expired(store: Session) -> tuple[ConsoleUser, str] | None:
    """Remove the cookie's session when it has been idle too long or lasted too long: (its account, why)."""
    row = _row(store)
    if row is None:
        return None
    config = current_app.config["GATEWAY"]
    now = datetime.now(UTC)
    if now - row.started_at > config.session_max:
        why = "session time limit"
    elif now - row.last_seen_at > config.session_idle:
        why = "idle"
    else:
        return None
    user = store.get(ConsoleUser, row.user_id)
    store.delete(row)
    store.commit()
    return (user, why) if user is not None else None


def live_user(store: Session) -> ConsoleUser | None:
    """The account whose live session the cookie names (expiry is `end_if_expired`'s, before every request)."""
    row = _row(store)
    if row is None:
        return None
    user = store.get(ConsoleUser, row.user_id)
    # A password changed (by any tool) after the sign-in ends the session, as does disabling the account.
    if user is None or not user.active or user.password_changed_at > row.started_at:
        return None
    now = datetime.now(UTC)
    idle = current_app.config["GATEWAY"].session_idle
    if now - row.last_seen_at > min(TOUCH_EVERY, idle / 10):
        row.last_seen_at = now
        store.commit()
    return user


def end_current(store: Session) -> None:
    token = session.get(SESSION_KEY)
    if isinstance(token, str):
        store.execute(delete(ConsoleSession).where(ConsoleSession.token_sha256 == _sha256(token)))
        store.commit()
