"""Image-consent register, uploads seen under the school-accounts permission, and the headteacher's approval of
school-owned devices.

Revision ID: 0013_consent_uploads
Revises: 0012_circumvention
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_consent_uploads"
down_revision: str | Sequence[str] | None = "0012_circumvention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "image_consent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("academic_year", sa.Integer(), nullable=False),
        sa.Column("change", sa.String(12), nullable=False),
        sa.Column("images", sa.Boolean(), nullable=False),
        sa.Column("video", sa.Boolean(), nullable=False),
        sa.Column("channels", sa.String(64), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(128), nullable=False),
        sa.Column("recorded_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_image_consent"),
    )
    op.create_index("ix_image_consent_year_username", "image_consent", ["academic_year", "username"])
    op.create_table(
        "upload_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("row_id", sa.String(32), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("site", sa.String(64)),
        sa.Column("username", sa.String(128)),
        sa.Column("display_name", sa.String(200)),
        sa.Column("group_name", sa.String(64)),
        sa.Column("device", sa.String(128)),
        sa.Column("client_ip", sa.String(45)),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("path", sa.Text()),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("refusal", sa.String(32)),
        sa.Column("media", sa.String(64)),
        sa.Column("detected_by", sa.String(32)),
        sa.Column("filename", sa.String(255)),
        sa.Column("bytes", sa.Integer()),
        sa.PrimaryKeyConstraint("id", name="pk_upload_event"),
        sa.UniqueConstraint("row_id", name="uq_upload_event_row_id"),
    )
    op.create_index("ix_upload_event_at", "upload_event", ["at"])
    with op.batch_alter_table("device") as batch:
        batch.add_column(sa.Column("approved_at", WHEN))
        batch.add_column(sa.Column("approved_by", sa.String(128)))


def downgrade() -> None:
    with op.batch_alter_table("device") as batch:
        batch.drop_column("approved_by")
        batch.drop_column("approved_at")
    op.drop_index("ix_upload_event_at", table_name="upload_event")
    op.drop_table("upload_event")
    op.drop_index("ix_image_consent_year_username", table_name="image_consent")
    op.drop_table("image_consent")
