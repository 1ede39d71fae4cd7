"""Console sessions held on the server, so a signed-out cookie signs nobody in; console accounts no longer lock
(anyone could lock anyone out), so their lock time goes.

Revision ID: 0005_console_sessions
Revises: 0004_log_connections
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_console_sessions"
down_revision: str | Sequence[str] | None = "0004_log_connections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("console_user") as batch:
        batch.drop_column("locked_until")
    op.create_table(
        "console_session",
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("last_seen_at", WHEN, nullable=False),
        sa.Column("client_ip", sa.String(45)),
        sa.PrimaryKeyConstraint("token_sha256", name="pk_console_session"),
        sa.ForeignKeyConstraint(["user_id"], ["console_user.id"], ondelete="CASCADE",
                                name="fk_console_session_user_id_console_user"),
    )
    op.create_index("ix_console_session_user_id", "console_session", ["user_id"])


def downgrade() -> None:
    op.drop_table("console_session")
    with op.batch_alter_table("console_user") as batch:
        batch.add_column(sa.Column("locked_until", WHEN))
