"""Who is bound to a client address now: RADIUS accounting sessions and captive-portal sign-ins, and the
failed sign-ins that rate limiting counts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base


class IdentitySession(Base):
    """A binding of a client IP to a person. Live while `ended_at` is NULL; ended rows are the history."""

    __tablename__ = "identity_session"
    __table_args__ = (Index("ix_identity_session_live", "ended_at", "client_ip"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_ip: Mapped[str] = mapped_column(String(45))
    # gateway.identity.types.IdentitySource: radius, portal or proxy_auth.
    source: Mapped[str] = mapped_column(String(16))
    username: Mapped[str] = mapped_column(String(128))
    # The client's MAC when the binding started (from RADIUS Calling-Station-Id or the DHCP lease): when the
    # lease for the address moves to another MAC the binding ends.
    mac: Mapped[str | None] = mapped_column(String(17))
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    # signed_out, idle, lease_moved, radius_stop, replaced, expired.
    end_reason: Mapped[str | None] = mapped_column(String(16))
    # RADIUS Acct-Session-Id and the NAS that sent it.
    radius_session_id: Mapped[str | None] = mapped_column(String(64))
    nas: Mapped[str | None] = mapped_column(String(64))


class SignInFailure(Base):
    __tablename__ = "sign_in_failure"
    __table_args__ = (
        Index("ix_sign_in_failure_ip_at", "client_ip", "at"),
        Index("ix_sign_in_failure_username_at", "username", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    client_ip: Mapped[str] = mapped_column(String(45))
    username: Mapped[str | None] = mapped_column(String(128))
