"""Console sign-ins held on the server: a session cookie is good only while its row is here, so signing out,
changing a password or an expiry ends it for every copy of the cookie."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base


class ConsoleSession(Base):
    __tablename__ = "console_session"
    __table_args__ = (Index("ix_console_session_user_id", "user_id"),)

    # SHA-256 of the random token the signed cookie carries: a copy of this table signs nobody in.
    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_user.id", ondelete="CASCADE"))
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    client_ip: Mapped[str | None] = mapped_column(String(45))
