"""Reports to the e-safety officer and headteacher, the school's local blocks, and the weekly digests sent.

Revision ID: 0011_reports
Revises: 0010_curriculum_windows
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_reports"
down_revision: str | Sequence[str] | None = "0010_curriculum_windows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)
REPORT_INDEXES = {
    "ix_report_queue_status_created_at": ["queue", "status", "created_at"],
    "ix_report_dedup": ["person_key", "host", "category", "kind", "status"],
    "ix_report_alert_state": ["alert_state"],
    "ix_report_created_at": ["created_at"],
}


def upgrade() -> None:
    op.create_table(
        "report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("queue", sa.String(12), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("last_seen_at", WHEN, nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("site", sa.String(64)),
        sa.Column("username", sa.String(128)),
        sa.Column("display_name", sa.String(200)),
        sa.Column("group_name", sa.String(64)),
        sa.Column("school_class", sa.String(64)),
        sa.Column("year_group", sa.Integer()),
        sa.Column("device", sa.String(128)),
        sa.Column("client_ip", sa.String(45)),
        sa.Column("person_key", sa.String(160)),
        sa.Column("url", sa.Text()),
        sa.Column("host", sa.String(255)),
        sa.Column("category", sa.String(64)),
        sa.Column("score", sa.Integer()),
        sa.Column("matches", sa.Text()),
        sa.Column("excerpt", sa.Text()),
        sa.Column("search_terms", sa.Text()),
        sa.Column("reporter", sa.String(128)),
        sa.Column("reporter_role", sa.String(32)),
        sa.Column("details", sa.Text()),
        sa.Column("service", sa.String(64)),
        sa.Column("happened_at", WHEN),
        sa.Column("other_party", sa.String(200)),
        sa.Column("source_row_id", sa.String(32)),
        sa.Column("decided_by", sa.String(128)),
        sa.Column("decided_at", WHEN),
        sa.Column("decision_note", sa.Text()),
        sa.Column("alert_state", sa.String(8), nullable=False),
        sa.Column("alert_sent_at", WHEN),
        sa.Column("alert_attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_report"),
    )
    for name, columns in REPORT_INDEXES.items():
        op.create_index(name, "report", columns)
    op.create_table(
        "local_block",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("path_prefix", sa.Text()),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("report_id", sa.Integer()),
        sa.Column("removed_at", WHEN),
        sa.Column("removed_by", sa.String(128)),
        sa.Column("removal_reason", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_local_block"),
    )
    op.create_index("ix_local_block_removed_at", "local_block", ["removed_at"])
    op.create_table(
        "report_digest",
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("sent_at", WHEN, nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("week_start", name="pk_report_digest"),
    )


def downgrade() -> None:
    op.drop_table("report_digest")
    op.drop_index("ix_local_block_removed_at", table_name="local_block")
    op.drop_table("local_block")
    for name in REPORT_INDEXES:
        op.drop_index(name, table_name="report")
    op.drop_table("report")
