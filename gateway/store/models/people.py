"""People from the school roster (pupils and staff) and how they sign in to the captive portal."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base


class PersonRecord(Base):
    """One pupil or member of staff. Leavers stay (inactive) so their history keeps a name."""

    __tablename__ = "person"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The school it belongs to (the writer's policy's `school.site`); a trust filters by it.
    site: Mapped[str | None] = mapped_column(String(64))
    # Lower case; the roster's key.
    username: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    group_name: Mapped[str] = mapped_column(String(64))
    year_group: Mapped[int | None]
    school_class: Mapped[str | None] = mapped_column(String(64), index=True)
    date_of_birth: Mapped[date | None]
    email: Mapped[str | None] = mapped_column(String(254))
    # Staff roles (gateway.identity.people.StaffRole values), space separated, sorted.
    roles: Mapped[str] = mapped_column(String(128), default="")
    active: Mapped[bool] = mapped_column(default=True)
    left_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(index=True)
    # Captive-portal credentials: an argon2 hash of the password, an argon2 hash of the picture code
    # (the pictures' names joined by spaces), and the SHA-256 of the secret on the pupil's QR card.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    picture_code_hash: Mapped[str | None] = mapped_column(String(255))
    card_token_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
