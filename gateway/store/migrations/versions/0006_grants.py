"""Grants made at run time (unblocks and permissions), and the change counter the proxies follow.

Revision ID: 0006_grants
Revises: 0005_console_sessions
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_grants"
down_revision: str | Sequence[str] | None = "0005_console_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "grant_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("starts", WHEN),
        sa.Column("expires", WHEN, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("approved_by", sa.String(128)),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("revoked_at", WHEN),
        sa.Column("revoked_by", sa.String(128)),
        sa.PrimaryKeyConstraint("id", name="pk_grant_record"),
    )
    op.create_index("ix_grant_record_expires", "grant_record", ["expires"])
    op.create_table(
        "store_version",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_store_version"),
    )


def downgrade() -> None:
    op.drop_table("store_version")
    op.drop_index("ix_grant_record_expires", table_name="grant_record")
    op.drop_table("grant_record")
