"""A class is a name at one school: class teachers carry the site whose roster named them.

Existing rows get the site of the teacher's roster entry (every one has a site since 0014), else "". The primary
key becomes (site, username, school_class), so a teacher may teach a 5B at two schools of a trust.

Revision ID: 0015_class_sites
Revises: 0014_sites
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_class_sites"
down_revision: str | Sequence[str] | None = "0014_sites"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("class_teacher") as batch:
        batch.add_column(sa.Column("site", sa.String(64), nullable=False, server_default=""))
    op.execute("UPDATE class_teacher SET site = COALESCE((SELECT person.site FROM person "
               "WHERE person.username = class_teacher.username), '')")  # fmt: skip
    with op.batch_alter_table("class_teacher", recreate="always") as batch:
        batch.drop_index("ix_class_teacher_school_class")
        batch.drop_constraint("pk_class_teacher", type_="primary")
        batch.create_primary_key("pk_class_teacher", ["site", "username", "school_class"])
        batch.alter_column("site", existing_type=sa.String(64), server_default=None)
        batch.create_index("ix_class_teacher_site_school_class", ["site", "school_class"])


def downgrade() -> None:
    # One row per (teacher, class) name again: a teacher of two schools' 5B keeps one.
    op.execute("DELETE FROM class_teacher WHERE EXISTS (SELECT 1 FROM class_teacher AS other "
               "WHERE other.username = class_teacher.username AND other.school_class = class_teacher.school_class "
               "AND other.site < class_teacher.site)")  # fmt: skip
    with op.batch_alter_table("class_teacher", recreate="always") as batch:
        batch.drop_index("ix_class_teacher_site_school_class")
        batch.drop_constraint("pk_class_teacher", type_="primary")
        batch.create_primary_key("pk_class_teacher", ["username", "school_class"])
        batch.drop_column("site")
        batch.create_index("ix_class_teacher_school_class", ["school_class"])
