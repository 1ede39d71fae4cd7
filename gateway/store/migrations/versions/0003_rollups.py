"""Hourly access-log counts for the dashboard (access_rollup).

Created empty: a database with log rows from before this revision is filled by `gateway db rebuild-rollups`.

Revision ID: 0003_rollups
Revises: 0002_identity
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_rollups"
down_revision: str | Sequence[str] | None = "0002_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_rollup",
        sa.Column("dimension", sa.String(8), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("dimension", "action", "hour", "site", "key", name=op.f("pk_access_rollup")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("access_rollup")
