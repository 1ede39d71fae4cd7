"""Access log, audit trail, console users.

Revision ID: 0001_store
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_store"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROW_NUMBER = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)

ACCESS_LOG_INDEXES = {
    "ix_access_log_at": ["at"],
    "ix_access_log_username_at": ["username", "at"],
    "ix_access_log_group_at": ["group_name", "at"],
    "ix_access_log_class_at": ["school_class", "at"],
    "ix_access_log_device_at": ["device", "at"],
    "ix_access_log_host_rev_at": ["host_rev", "at"],
    "ix_access_log_list_at": ["list_name", "at"],
    "ix_access_log_action_at": ["action", "at"],
    "ix_access_log_site_at": ["site", "at"],
}


def upgrade() -> None:
    op.create_table(
        "access_log",
        sa.Column("id", ROW_NUMBER, autoincrement=True, nullable=False),
        sa.Column("row_id", sa.String(32), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("site", sa.String(64)),
        sa.Column("username", sa.String(128)),
        sa.Column("display_name", sa.String(200)),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("school_class", sa.String(64)),
        sa.Column("year_group", sa.Integer()),
        sa.Column("device", sa.String(128)),
        sa.Column("client_ip", sa.String(45)),
        sa.Column("identity_source", sa.String(16)),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("scheme", sa.String(8), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("host_rev", sa.String(256), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("query", sa.Text()),
        sa.Column("search_terms", sa.Text()),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(128)),
        sa.Column("list_name", sa.String(128)),
        sa.Column("matched", sa.String(255)),
        sa.Column("reason", sa.Text()),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer()),
        sa.Column("bytes", sa.BigInteger()),
        sa.Column("error", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_access_log"),
        sa.UniqueConstraint("row_id", name="uq_access_log_row_id"),
    )
    for name, columns in ACCESS_LOG_INDEXES.items():
        op.create_index(name, "access_log", columns)

    op.create_table(
        "audit_event",
        sa.Column("id", ROW_NUMBER, autoincrement=True, nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("actor_role", sa.String(32)),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(255)),
        sa.Column("detail", sa.Text()),
        sa.Column("client_ip", sa.String(45)),
        sa.PrimaryKeyConstraint("id", name="pk_audit_event"),
    )
    op.create_index("ix_audit_event_at", "audit_event", ["at"])
    op.create_index("ix_audit_event_actor_at", "audit_event", ["actor", "at"])
    _protect_audit_trail()

    op.create_table(
        "console_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", WHEN),
        sa.Column("last_login_at", WHEN),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("password_changed_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_console_user"),
        sa.UniqueConstraint("username", name="uq_console_user_username"),
    )


def _protect_audit_trail() -> None:
    """The audit trail is append-only in the database itself."""
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_event_no_{verb.lower()} BEFORE {verb} ON audit_event "
                "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END"
            )
        return
    op.execute(
        "CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$"
    )
    op.execute(
        "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event "
        "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()"
    )


def downgrade() -> None:
    op.drop_table("console_user")
    op.drop_table("audit_event")
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP FUNCTION IF EXISTS audit_event_append_only()")
    op.drop_table("access_log")
