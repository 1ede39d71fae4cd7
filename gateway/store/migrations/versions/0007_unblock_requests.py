"""Requests to unblock a page, and each step of the officer's and headteacher's review.

Revision ID: 0007_unblock_requests
Revises: 0006_grants
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_unblock_requests"
down_revision: str | Sequence[str] | None = "0006_grants"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "unblock_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("username", sa.String(128)),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=False),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("school_class", sa.String(64)),
        sa.Column("year_group", sa.Integer()),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("rule", sa.String(128)),
        sa.Column("list_name", sa.String(128)),
        sa.Column("reference", sa.String(64)),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("extent", sa.String(8), nullable=False),
        sa.Column("audience", sa.String(8), nullable=False),
        sa.Column("duration", sa.String(12), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("officer_by", sa.String(128)),
        sa.Column("officer_at", WHEN),
        sa.Column("officer_note", sa.Text()),
        sa.Column("recommendation", sa.String(8)),
        sa.Column("decided_by", sa.String(128)),
        sa.Column("decided_at", WHEN),
        sa.Column("decision_note", sa.Text()),
        sa.Column("grant_number", sa.Integer()),
        sa.PrimaryKeyConstraint("id", name="pk_unblock_request"),
    )
    op.create_index("ix_unblock_request_username", "unblock_request", ["username"])
    op.create_index("ix_unblock_request_client_ip", "unblock_request", ["client_ip"])
    op.create_index("ix_unblock_request_status", "unblock_request", ["status"])
    op.create_index("ix_unblock_request_created_at", "unblock_request", ["created_at"])


def downgrade() -> None:
    for name in ("created_at", "status", "client_ip", "username"):
        op.drop_index(f"ix_unblock_request_{name}", table_name="unblock_request")
    op.drop_table("unblock_request")
