"""Which classes each member of staff teaches.

Revision ID: 0009_class_teachers
Revises: 0008_permissions
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_class_teachers"
down_revision: str | Sequence[str] | None = "0008_permissions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "class_teacher",
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("school_class", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("username", "school_class", name="pk_class_teacher"),
    )
    op.create_index("ix_class_teacher_school_class", "class_teacher", ["school_class"])


def downgrade() -> None:
    op.drop_index("ix_class_teacher_school_class", table_name="class_teacher")
    op.drop_table("class_teacher")
