"""Hourly counts of the access log, so the dashboard never reads the log itself.

One row per (dimension, action, UTC hour, site, key) with the number of access-log rows it stands for:

- `period`: every request, keyed by its timetable period (busiest hours; blocked and flagged over time);
- `group`, `class`, `list`, `host`: blocked and flagged requests only, keyed by group, class, list and host.

Kept by the access-log writer in the transaction that inserts the rows, by retention when it purges, and by
`gateway db rebuild-rollups` for rows that arrived another way. A NULL in the log (no site, no class) is ''.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base


class AccessRollup(Base):
    __tablename__ = "access_rollup"
    # The primary key is the one index: "this dimension, these actions, these hours" is one range of it, and
    # in SQLite (no rowid) the table is that index, so a dashboard query reads nothing else.
    __table_args__ = {"sqlite_with_rowid": False}

    dimension: Mapped[str] = mapped_column(String(8), primary_key=True)
    action: Mapped[str] = mapped_column(String(8), primary_key=True)
    # Hours since 1970-01-01 00:00 UTC.
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
