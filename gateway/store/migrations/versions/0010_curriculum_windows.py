"""Curriculum-activity windows a teacher asks for one of their classes.

Revision ID: 0010_curriculum_windows
Revises: 0009_class_teachers
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_curriculum_windows"
down_revision: str | Sequence[str] | None = "0009_class_teachers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "curriculum_window",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("teacher", sa.String(128), nullable=False),
        sa.Column("school_class", sa.String(64), nullable=False),
        sa.Column("lists", sa.Text(), nullable=False),
        sa.Column("domains", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("starts", WHEN, nullable=False),
        sa.Column("ends", WHEN, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("preauthorised", sa.Boolean(), nullable=False),
        sa.Column("decided_by", sa.String(128)),
        sa.Column("decided_at", WHEN),
        sa.Column("decision_note", sa.Text()),
        sa.Column("grant_number", sa.Integer()),
        sa.Column("closed_by", sa.String(128)),
        sa.Column("closed_at", WHEN),
        sa.Column("seen_by_head_at", WHEN),
        sa.PrimaryKeyConstraint("id", name="pk_curriculum_window"),
    )
    op.create_index("ix_curriculum_window_teacher", "curriculum_window", ["teacher"])
    op.create_index("ix_curriculum_window_status", "curriculum_window", ["status"])


def downgrade() -> None:
    op.drop_index("ix_curriculum_window_status", table_name="curriculum_window")
    op.drop_index("ix_curriculum_window_teacher", table_name="curriculum_window")
    op.drop_table("curriculum_window")
