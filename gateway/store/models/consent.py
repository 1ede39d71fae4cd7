"""The image-consent register and the uploads the gateway saw under the school-accounts permission.

Consent is kept as a history: every recording, amendment and withdrawal is a row of its own, never updated, so the
DPO can show what the school knew on any day. A row counts only in its academic year (1 September to 31 August).

An upload row is written by the access-log writer from a row that carries an `upload` (no column), in the
transaction that inserts the access-log row, so an outage of the database loses none.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base


class ConsentRecord(Base):
    __tablename__ = "image_consent"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The school it belongs to (the writer's policy's `school.site`); a trust filters by it.
    site: Mapped[str | None] = mapped_column(String(64))
    # The pupil's roster username.
    username: Mapped[str] = mapped_column(String(128))
    # The calendar year the academic year starts in: 2026 is 2026/27.
    academic_year: Mapped[int]
    # "recorded", "amended" or "withdrawn".
    change: Mapped[str] = mapped_column(String(12))
    images: Mapped[bool]
    video: Mapped[bool]
    # The school's channels the consent covers (`gateway.store.consent.CHANNELS`), space separated, sorted.
    channels: Mapped[str] = mapped_column(String(64))
    # The day the written source gave or changed consent, and that source ("signed form 2026-09-04").
    effective_on: Mapped[date]
    source: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[datetime]

    __table_args__ = (Index("ix_image_consent_year_username", "academic_year", "username"),)


class UploadEvent(Base):
    __tablename__ = "upload_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The access-log row it came with.
    row_id: Mapped[str] = mapped_column(String(32), unique=True)
    at: Mapped[datetime] = mapped_column(index=True)
    site: Mapped[str | None] = mapped_column(String(64))
    username: Mapped[str | None] = mapped_column(String(128))
    display_name: Mapped[str | None] = mapped_column(String(200))
    group_name: Mapped[str | None] = mapped_column(String(64))
    device: Mapped[str | None] = mapped_column(String(128))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    method: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(255))
    path: Mapped[str | None] = mapped_column(Text)
    # "posted" (under the permission, from an approved school device) or "refused".
    outcome: Mapped[str] = mapped_column(String(12))
    # Why it was refused (`gateway.content.uploads` / upload guard reasons); None when posted.
    refusal: Mapped[str | None] = mapped_column(String(32))
    # What was sent: "image/jpeg", "video/mp4" …, how it was known, a part's file name, the declared size.
    media: Mapped[str | None] = mapped_column(String(64))
    detected_by: Mapped[str | None] = mapped_column(String(32))
    filename: Mapped[str | None] = mapped_column(String(255))
    bytes: Mapped[int | None]
