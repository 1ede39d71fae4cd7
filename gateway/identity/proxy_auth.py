"""Checking proxy credentials (HTTP Basic) against the roster's portal passwords, with a short cache so a
browser's many requests cost one argon2 verification, not one each."""

from __future__ import annotations

import hashlib
import threading
import time

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.identity.credentials import verify_secret
from gateway.store.models.people import PersonRecord


class RosterValidator:
    """Same call shape as mitmproxy's proxyauth validators: (username, password) -> bool."""

    def __init__(self, sessions: sessionmaker[Session], cache_seconds: float = 300.0) -> None:
        self.sessions = sessions
        self.cache_seconds = cache_seconds
        self._ok: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def __call__(self, username: str, password: str) -> bool:
        username = username.strip().lower()
        key = (username, hashlib.sha256(password.encode()).hexdigest())
        now = time.monotonic()
        with self._lock:
            if self._ok.get(key, 0.0) > now:
                return True
        with self.sessions() as s:
            stored = s.scalar(select(PersonRecord.password_hash).where(PersonRecord.username == username,
                                                                       PersonRecord.active))
        if not verify_secret(stored, password):
            return False
        with self._lock:
            self._ok = {k: t for k, t in self._ok.items() if t > now}
            self._ok[key] = now + self.cache_seconds
        return True
