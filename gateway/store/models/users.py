"""Console accounts: staff only. Pupils and guests never have one."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base


class Role(enum.StrEnum):
    # The designated safeguarding lead: reviews the log and responds.
    OFFICER = "officer"
    HEADTEACHER = "headteacher"
    DPO = "dpo"
    TEACHER = "teacher"
    IT = "it"


class ConsoleUser(Base):
    __tablename__ = "console_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    # Wrong passwords since the last sign-in: slows further attempts (see gateway.web.throttle), never locks.
    failed_logins: Mapped[int] = mapped_column(default=0)
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]
    # The sites (space separated) whose records the account may see; empty: every site, a trust-wide role.
    sites: Mapped[str] = mapped_column(String(255), default="", server_default="")

    # The session protocol Flask-Login expects, without importing Flask into the store.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)
