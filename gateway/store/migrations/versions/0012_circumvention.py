"""Circumvention incidents, supervised-only bans and supervised sessions.

Revision ID: 0012_circumvention
Revises: 0011_reports
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_circumvention"
down_revision: str | Sequence[str] | None = "0011_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)
INCIDENT_INDEXES = {
    "ix_incident_dedup": ["person_key", "technique", "status"],
    "ix_incident_status_created_at": ["status", "created_at"],
    "ix_incident_notice_state": ["notice_state"],
    "ix_incident_created_at": ["created_at"],
}


def upgrade() -> None:
    op.create_table(
        "incident",
        sa.Column("id", sa.Integer(), nullable=False),
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
        sa.Column("technique", sa.String(32), nullable=False),
        sa.Column("detector", sa.String(48), nullable=False),
        sa.Column("confidence", sa.String(8), nullable=False),
        sa.Column("host", sa.String(255)),
        sa.Column("sni", sa.String(255)),
        sa.Column("url", sa.Text()),
        sa.Column("user_agent", sa.Text()),
        sa.Column("first_bytes", sa.Text()),
        sa.Column("evidence", sa.Text()),
        sa.Column("source_row_id", sa.String(32)),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("decided_by", sa.String(128)),
        sa.Column("decided_at", WHEN),
        sa.Column("decision_note", sa.Text()),
        sa.Column("notice_state", sa.String(12), nullable=False),
        sa.Column("notice_sent_at", WHEN),
        sa.Column("notice_attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incident"),
    )
    for name, columns in INCIDENT_INDEXES.items():
        op.create_index(name, "incident", columns)
    op.create_table(
        "ban",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("display_name", sa.String(200)),
        sa.Column("incident_id", sa.Integer()),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("starts_at", WHEN, nullable=False),
        sa.Column("ends_at", WHEN),
        sa.Column("lifted_at", WHEN),
        sa.Column("lifted_by", sa.String(128)),
        sa.Column("lift_note", sa.Text()),
        sa.Column("site", sa.String(64)),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"], name="fk_ban_incident_id_incident"),
        sa.PrimaryKeyConstraint("id", name="pk_ban"),
    )
    op.create_index("ix_ban_username", "ban", ["username"])
    op.create_index("ix_ban_lifted_at", "ban", ["lifted_at"])
    op.create_table(
        "supervised_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ban_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("teacher", sa.String(128), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("ends_at", WHEN, nullable=False),
        sa.Column("ended_at", WHEN),
        sa.Column("note", sa.Text()),
        sa.ForeignKeyConstraint(["ban_id"], ["ban.id"], name="fk_supervised_session_ban_id_ban"),
        sa.PrimaryKeyConstraint("id", name="pk_supervised_session"),
    )
    op.create_index("ix_supervised_session_username_ends_at", "supervised_session", ["username", "ends_at"])


def downgrade() -> None:
    op.drop_index("ix_supervised_session_username_ends_at", table_name="supervised_session")
    op.drop_table("supervised_session")
    op.drop_index("ix_ban_lifted_at", table_name="ban")
    op.drop_index("ix_ban_username", table_name="ban")
    op.drop_table("ban")
    for name in INCIDENT_INDEXES:
        op.drop_index(name, table_name="incident")
    op.drop_table("incident")
