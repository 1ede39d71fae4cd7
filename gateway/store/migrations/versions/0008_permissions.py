"""Two-key permissions for personal accounts on the WiFi.

Revision ID: 0008_permissions
Revises: 0007_unblock_requests
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_permissions"
down_revision: str | Sequence[str] | None = "0007_unblock_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "personal_permission",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("lists", sa.Text(), nullable=False),
        sa.Column("domains", sa.Text(), nullable=False),
        sa.Column("expires", WHEN, nullable=False),
        sa.Column("exclude_lessons", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.String(128), nullable=False),
        sa.Column("confirmed_by", sa.String(128)),
        sa.Column("confirmed_at", WHEN),
        sa.Column("confirm_note", sa.Text()),
        sa.Column("grant_number", sa.Integer()),
        sa.Column("revoked_by", sa.String(128)),
        sa.Column("revoked_at", WHEN),
        sa.PrimaryKeyConstraint("id", name="pk_personal_permission"),
    )
    op.create_index("ix_personal_permission_username", "personal_permission", ["username"])


def downgrade() -> None:
    op.drop_index("ix_personal_permission_username", table_name="personal_permission")
    op.drop_table("personal_permission")
