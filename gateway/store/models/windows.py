"""Curriculum-activity windows: a teacher asks to open sites or lists for a class they teach, in lesson time, for
a lesson or a few days; the headteacher approves (which writes the store grant every proxy follows) or rejects.
A window from a teacher the policy pre-authorises opens at once and waits for the headteacher to see it.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base


class WindowStatus(enum.StrEnum):
    ASKED = "asked"
    OPEN = "open"
    REJECTED = "rejected"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


class CurriculumWindow(Base):
    __tablename__ = "curriculum_window"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The school it belongs to (the writer's policy's `school.site`); a trust filters by it.
    site: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    teacher: Mapped[str] = mapped_column(String(128), index=True)
    school_class: Mapped[str] = mapped_column(String(64))
    # JSON lists of the policy's list names and of domains.
    lists: Mapped[str] = mapped_column(Text)
    domains: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(Text)
    starts: Mapped[datetime]
    ends: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), index=True)
    preauthorised: Mapped[bool]
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(Text)
    # The store grant written when the window opened.
    grant_number: Mapped[int | None]
    closed_by: Mapped[str | None] = mapped_column(String(128))
    closed_at: Mapped[datetime | None]
    # When the headteacher saw a window a pre-authorised teacher opened without approval.
    seen_by_head_at: Mapped[datetime | None]
