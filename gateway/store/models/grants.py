"""Exceptions granted at run time (unblocks and permissions), and the change counter every proxy follows.

A grant names lists and hosts by name, never by a compiled policy's list bits, so it means the same sites after any
policy reload; each proxy compiles the grants in force against whichever policy it is running.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.base import Base


class GrantRecord(Base):
    __tablename__ = "grant_record"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The school it belongs to (the writer's policy's `school.site`); a trust filters by it.
    site: Mapped[str | None] = mapped_column(String(64))
    # Who, where, when and what, as the fields of `gateway.policy.model.ExceptionGrant` (JSON): groups, users,
    # year_groups, classes, periods, lists, domains, action.
    scope: Mapped[str] = mapped_column(Text)
    starts: Mapped[datetime | None]
    expires: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    approved_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(128))
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (Index("ix_grant_record_expires", "expires"),)


class StoreVersion(Base):
    """One counter per kind of shared state, raised in the transaction that changes it: a proxy polls one row."""

    __tablename__ = "store_version"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int]
