"""The access log: one row per request decision (DfE: device, IP, person, time, search term, what was blocked)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base

# SQLite only auto-numbers an INTEGER PRIMARY KEY; PostgreSQL needs 64 bits at millions of rows a day.
RowNumber = BigInteger().with_variant(Integer(), "sqlite")


class AccessLogEntry(Base):
    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(RowNumber, primary_key=True, autoincrement=True)
    # Made when the row is queued; unique so a spool replay after a partial failure writes nothing twice.
    row_id: Mapped[str] = mapped_column(String(32), unique=True)
    at: Mapped[datetime]
    site: Mapped[str | None] = mapped_column(String(64))

    username: Mapped[str | None] = mapped_column(String(128))
    display_name: Mapped[str | None] = mapped_column(String(200))
    group_name: Mapped[str] = mapped_column(String(64))
    school_class: Mapped[str | None] = mapped_column(String(64))
    year_group: Mapped[int | None]
    device: Mapped[str | None] = mapped_column(String(128))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    identity_source: Mapped[str | None] = mapped_column(String(16))

    method: Mapped[str] = mapped_column(String(16))
    scheme: Mapped[str] = mapped_column(String(8))
    host: Mapped[str] = mapped_column(String(255))
    # Labels reversed with a trailing dot ("uk.co.bbc.www."), so "bbc.co.uk and its subdomains" is an index range.
    host_rev: Mapped[str] = mapped_column(String(256))
    path: Mapped[str] = mapped_column(Text)
    # Kept only when the privacy setting says so.
    query: Mapped[str | None] = mapped_column(Text)
    search_terms: Mapped[str | None] = mapped_column(Text)

    action: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str | None] = mapped_column(String(128))
    list_name: Mapped[str | None] = mapped_column(String(128))
    matched: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text)
    period: Mapped[str] = mapped_column(String(16))

    status: Mapped[int | None]
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)

    # The destination decided and contacted, and for a connection passed through untouched (method CONNECT) its
    # TLS server name, bytes each way and how long it lasted.
    port: Mapped[int | None]
    sni: Mapped[str | None] = mapped_column(String(255))
    bytes_up: Mapped[int | None] = mapped_column(BigInteger)
    bytes_down: Mapped[int | None] = mapped_column(BigInteger)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)

    # Each console filter leads with its column and ends with the time, so "filter, newest first" is one range.
    __table_args__ = (
        Index("ix_access_log_at", "at"),
        Index("ix_access_log_username_at", "username", "at"),
        Index("ix_access_log_group_at", "group_name", "at"),
        Index("ix_access_log_class_at", "school_class", "at"),
        Index("ix_access_log_device_at", "device", "at"),
        Index("ix_access_log_host_rev_at", "host_rev", "at"),
        Index("ix_access_log_list_at", "list_name", "at"),
        Index("ix_access_log_action_at", "action", "at"),
        Index("ix_access_log_site_at", "site", "at"),
        # A school's log sorted by person, in a trust's shared store.
        Index("ix_access_log_site_username_at", "site", "username", "at"),
    )


def reverse_host(host: str) -> str:
    return ".".join(reversed(host.lower().rstrip(".").split("."))) + "."
