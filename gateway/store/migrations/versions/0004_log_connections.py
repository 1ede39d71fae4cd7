"""Access log: the destination port, and for connections passed through untouched their TLS server name, bytes
each way and duration.

Revision ID: 0004_log_connections
Revises: 0003_rollups
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_log_connections"
down_revision: str | Sequence[str] | None = "0003_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("port", sa.Integer()),
    ("sni", sa.String(255)),
    ("bytes_up", sa.BigInteger()),
    ("bytes_down", sa.BigInteger()),
    ("duration_ms", sa.BigInteger()),
)


def upgrade() -> None:
    with op.batch_alter_table("access_log") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_log") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
