"""Reports to the e-safety officer and the headteacher, the school's own blocks made from them, and the weekly
digests sent.

A report is made by the access-log writer (a flagged visit, a content or search finding, an illegal-list attempt)
or by a person ("Report this page", a contact attempt). Repeats of the same open report raise `hits` rather than
add rows, so the queue shows one line per person, site, category and kind.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base
from gateway.store.models.reported_person import ReportedPerson


class Report(ReportedPerson, Base):
    __tablename__ = "report"

    id: Mapped[int] = mapped_column(primary_key=True)
    # "page", "search", "flagged_site", "illegal_attempt", "person" or "contact".
    kind: Mapped[str] = mapped_column(String(16))
    # "officer" or "headteacher".
    queue: Mapped[str] = mapped_column(String(12))
    # "open", "dismissed", "blocked", "escalated" or "closed".
    status: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    hits: Mapped[int]
    site: Mapped[str | None] = mapped_column(String(64))

    url: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))
    category: Mapped[str | None] = mapped_column(String(64))
    score: Mapped[int | None]
    # A JSON list of the phrases or terms that matched.
    matches: Mapped[str | None] = mapped_column(Text)
    excerpt: Mapped[str | None] = mapped_column(Text)
    search_terms: Mapped[str | None] = mapped_column(Text)

    reporter: Mapped[str | None] = mapped_column(String(128))
    reporter_role: Mapped[str | None] = mapped_column(String(32))
    details: Mapped[str | None] = mapped_column(Text)
    # A contact attempt: on which service, when, and who tried.
    service: Mapped[str | None] = mapped_column(String(64))
    happened_at: Mapped[datetime | None]
    other_party: Mapped[str | None] = mapped_column(String(200))

    # The access-log row that made the report (its row_id), when traffic made it.
    source_row_id: Mapped[str | None] = mapped_column(String(32))
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(Text)

    # "none", "due", "sent", "skipped" or "failed".
    alert_state: Mapped[str] = mapped_column(String(8))
    alert_sent_at: Mapped[datetime | None]
    alert_attempts: Mapped[int]

    __table_args__ = (
        Index("ix_report_queue_status_created_at", "queue", "status", "created_at"),
        Index("ix_report_dedup", "person_key", "host", "category", "kind", "status"),
        Index("ix_report_alert_state", "alert_state"),
        Index("ix_report_created_at", "created_at"),
    )


class LocalBlock(Base):
    """A site (or one URL prefix) the school blocked for everyone, usually from a report."""

    __tablename__ = "local_block"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The school it belongs to (the writer's policy's `school.site`); a trust filters by it.
    site: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    # None blocks the whole site and its subdomains; otherwise paths starting with this one.
    path_prefix: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    report_id: Mapped[int | None]
    removed_at: Mapped[datetime | None]
    removed_by: Mapped[str | None] = mapped_column(String(128))
    removal_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_local_block_removed_at", "removed_at"),)


class ReportDigest(Base):
    """A weekly digest sent, so it goes once however many processes try."""

    __tablename__ = "report_digest"

    week_start: Mapped[date] = mapped_column(primary_key=True)
    sent_at: Mapped[datetime]
    recipients: Mapped[str] = mapped_column(Text)
