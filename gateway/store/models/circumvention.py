"""Circumvention incidents, the supervised-only bans they lead to, and the supervised sessions a teacher starts.

An incident is written by the access-log writer from a row that carries a detection (`incident`, no column), in
the transaction that inserts the row, so an outage of the database loses none. Repeats of an open incident by the
same person and technique raise `hits` rather than add rows. A ban is on a person (a username), so it follows them
to any device they sign in on; a supervised session lets them through under a teacher's eye until it ends.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base
from gateway.store.models.reported_person import ReportedPerson


class Incident(ReportedPerson, Base):
    __tablename__ = "incident"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    hits: Mapped[int]
    site: Mapped[str | None] = mapped_column(String(64))

    # `gateway.circumvention.incident.Technique` values, and the detector that fired.
    technique: Mapped[str] = mapped_column(String(32))
    detector: Mapped[str] = mapped_column(String(48))
    # "high", "medium" or "low".
    confidence: Mapped[str] = mapped_column(String(8))
    host: Mapped[str | None] = mapped_column(String(255))
    sni: Mapped[str | None] = mapped_column(String(255))
    url: Mapped[str | None] = mapped_column(Text)
    user_agent: Mapped[str | None] = mapped_column(Text)
    # The first bytes of a tunnel that was not TLS, escaped for display.
    first_bytes: Mapped[str | None] = mapped_column(Text)
    # A JSON object: everything else the detector saw.
    evidence: Mapped[str | None] = mapped_column(Text)
    source_row_id: Mapped[str | None] = mapped_column(String(32))

    # "open", "confirmed" or "dismissed" (a false positive, back to the officer to tune).
    status: Mapped[str] = mapped_column(String(12))
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(Text)

    # "due", "sent", "summarised", "failed" or "none".
    notice_state: Mapped[str] = mapped_column(String(12))
    notice_sent_at: Mapped[datetime | None]
    notice_attempts: Mapped[int]

    __table_args__ = (
        Index("ix_incident_dedup", "person_key", "technique", "status"),
        Index("ix_incident_status_created_at", "status", "created_at"),
        Index("ix_incident_notice_state", "notice_state"),
        Index("ix_incident_created_at", "created_at"),
    )


class Ban(Base):
    """Supervised-only access: every request of the person is blocked outside a supervised session."""

    __tablename__ = "ban"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str | None] = mapped_column(String(200))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incident.id"))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    # A console user, or "gateway" for a ban the policy applied at once.
    created_by: Mapped[str] = mapped_column(String(128))
    starts_at: Mapped[datetime]
    # None: until the headteacher lifts it.
    ends_at: Mapped[datetime | None]
    lifted_at: Mapped[datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(String(128))
    lift_note: Mapped[str | None] = mapped_column(Text)
    site: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_ban_username", "username"), Index("ix_ban_lifted_at", "lifted_at"))


class SupervisedSession(Base):
    """A teacher's supervision of a banned pupil: access follows the normal rules until it ends by itself."""

    __tablename__ = "supervised_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    ban_id: Mapped[int] = mapped_column(ForeignKey("ban.id"))
    username: Mapped[str] = mapped_column(String(128))
    teacher: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    # Set when the teacher ends it early.
    ended_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_supervised_session_username_ends_at", "username", "ends_at"),)
