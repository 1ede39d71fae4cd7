"""Who a report or an incident is about, as the access-log row that raised it named them."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column


class ReportedPerson:
    """Columns shared by the officer's reports and the circumvention incidents (a mixin; no table of its own)."""

    username: Mapped[str | None] = mapped_column(String(128))
    display_name: Mapped[str | None] = mapped_column(String(200))
    group_name: Mapped[str | None] = mapped_column(String(64))
    school_class: Mapped[str | None] = mapped_column(String(64))
    year_group: Mapped[int | None]
    device: Mapped[str | None] = mapped_column(String(128))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    # For dedup: the username, else the device, else the client address.
    person_key: Mapped[str | None] = mapped_column(String(160))
