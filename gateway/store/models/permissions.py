"""Two-key permissions for personal accounts on the WiFi.

The headteacher grants (first key), the officer confirms the network security controls are in place (second
key); only then is the grant written to the store and followed by the proxies. Either key holder can revoke it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base


class PersonalPermission(Base):
    __tablename__ = "personal_permission"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The school it belongs to (the writer's policy's `school.site`); a trust filters by it.
    site: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    username: Mapped[str] = mapped_column(String(128), index=True)
    # The person's roster group when granted: staff never have lesson time, whatever the form said.
    group_name: Mapped[str] = mapped_column(String(64))
    # JSON lists of the policy's list names and of domains.
    lists: Mapped[str] = mapped_column(Text)
    domains: Mapped[str] = mapped_column(Text)
    expires: Mapped[datetime]
    exclude_lessons: Mapped[bool]
    reason: Mapped[str] = mapped_column(Text)
    granted_by: Mapped[str] = mapped_column(String(128))
    confirmed_by: Mapped[str | None] = mapped_column(String(128))
    confirmed_at: Mapped[datetime | None]
    confirm_note: Mapped[str | None] = mapped_column(Text)
    # The store grant written when the second key turned.
    grant_number: Mapped[int | None]
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    revoked_at: Mapped[datetime | None]
