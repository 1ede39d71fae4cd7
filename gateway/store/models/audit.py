"""The audit trail: who signed in, who looked at or exported log data, who changed what.

Rows are only ever added. Database triggers (see the migration) refuse UPDATE and DELETE, so not even a bug in
the console can rewrite the trail.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base
from gateway.store.models.access_log import RowNumber


class AuditEvent(Base):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(RowNumber, primary_key=True, autoincrement=True)
    # The school it belongs to (the writer's policy's `school.site`); a trust filters by it.
    site: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime]
    # A console username, or "cli:<os user>" for command-line changes.
    actor: Mapped[str] = mapped_column(String(128))
    actor_role: Mapped[str | None] = mapped_column(String(32))
    # sign_in, sign_in_failed, sign_in_refused, sign_out, view_log, view_timeline, view_dashboard, export_log,
    # export_person, view_audit, purge, change (CLI changes), policy-loaded, policy-rejected and
    # proxy_sign_in_failed (a running gateway, actor "gateway:<site>")
    action: Mapped[str] = mapped_column(String(32))
    # What was looked at or changed: "access_log", "person:jsmith", "policy", "roster", "devices", "lists:<dir>",
    # "class:5B", "console_user:jsmith" …
    target: Mapped[str | None] = mapped_column(String(255))
    # JSON: the filter used, the change made, the row count exported.
    detail: Mapped[str | None] = mapped_column(Text)
    client_ip: Mapped[str | None] = mapped_column(String(45))

    __table_args__ = (
        Index("ix_audit_event_at", "at"),
        Index("ix_audit_event_actor_at", "actor", "at"),
    )
