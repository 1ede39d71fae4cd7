"""Requests to unblock a page, from the block page's "ask for access" to the headteacher's decision.

The requester, URL and rule are those the console saw and signed when it served the form, never what a later
post claims. Every step keeps who took it and when, beside the audit trail.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base


class UnblockRequest(Base):
    __tablename__ = "unblock_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The school it belongs to (the writer's policy's `school.site`); a trust filters by it.
    site: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    # A roster username when the gateway knew the device; None for a name typed on an unknown device.
    username: Mapped[str | None] = mapped_column(String(128), index=True)
    display_name: Mapped[str] = mapped_column(String(200))
    client_ip: Mapped[str] = mapped_column(String(64), index=True)
    group_name: Mapped[str] = mapped_column(String(64))
    school_class: Mapped[str | None] = mapped_column(String(64))
    year_group: Mapped[int | None]
    url: Mapped[str] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(255))
    rule: Mapped[str | None] = mapped_column(String(128))
    list_name: Mapped[str | None] = mapped_column(String(128))
    reference: Mapped[str | None] = mapped_column(String(64))
    why: Mapped[str] = mapped_column(Text)
    # What was asked for: "page" or "site"; "me", "class", "year", "group" or "school"; "lesson", "today",
    # "week", "term" or "permanent".
    extent: Mapped[str] = mapped_column(String(8))
    audience: Mapped[str] = mapped_column(String(8))
    duration: Mapped[str] = mapped_column(String(12))
    # "new" (the officer's queue), "more_info", "forwarded" (the headteacher's queue), "approved", "rejected".
    status: Mapped[str] = mapped_column(String(12), index=True)
    officer_by: Mapped[str | None] = mapped_column(String(128))
    officer_at: Mapped[datetime | None]
    officer_note: Mapped[str | None] = mapped_column(Text)
    # "approve" or "reject": the officer's recommendation when forwarding.
    recommendation: Mapped[str | None] = mapped_column(String(8))
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(Text)
    grant_number: Mapped[int | None]

    __table_args__ = (Index("ix_unblock_request_created_at", "created_at"),)
