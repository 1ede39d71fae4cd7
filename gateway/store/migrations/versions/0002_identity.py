"""Identity: roster people, the device register, identity sessions (RADIUS and portal), failed sign-ins.

Revision ID: 0002_identity
Revises: 0001_store
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_identity"
down_revision: str | Sequence[str] | None = "0001_store"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "person",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("year_group", sa.Integer()),
        sa.Column("school_class", sa.String(64)),
        sa.Column("date_of_birth", sa.Date()),
        sa.Column("email", sa.String(254)),
        sa.Column("roles", sa.String(128), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("left_at", WHEN),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("password_hash", sa.String(255)),
        sa.Column("picture_code_hash", sa.String(255)),
        sa.Column("card_token_sha256", sa.String(64)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person")),
        sa.UniqueConstraint("username", name=op.f("uq_person_username")),
        sa.UniqueConstraint("card_token_sha256", name=op.f("uq_person_card_token_sha256")),
    )
    op.create_index(op.f("ix_person_school_class"), "person", ["school_class"])
    op.create_index(op.f("ix_person_updated_at"), "person", ["updated_at"])

    op.create_table(
        "device",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("mac", sa.String(17)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("personal", sa.Boolean(), nullable=False),
        sa.Column("username", sa.String(128)),
        sa.Column("school_class", sa.String(64)),
        sa.Column("trolley", sa.String(64)),
        sa.Column("group_name", sa.String(64)),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device")),
        sa.UniqueConstraint("mac", name=op.f("uq_device_mac")),
        sa.UniqueConstraint("name", name=op.f("uq_device_name")),
    )
    op.create_index(op.f("ix_device_updated_at"), "device", ["updated_at"])
    op.create_index(op.f("ix_device_username"), "device", ["username"])

    op.create_table(
        "identity_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_ip", sa.String(45), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("mac", sa.String(17)),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("last_seen_at", WHEN, nullable=False),
        sa.Column("ended_at", WHEN),
        sa.Column("end_reason", sa.String(16)),
        sa.Column("radius_session_id", sa.String(64)),
        sa.Column("nas", sa.String(64)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_session")),
    )
    op.create_index("ix_identity_session_live", "identity_session", ["ended_at", "client_ip"])

    op.create_table(
        "sign_in_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("client_ip", sa.String(45), nullable=False),
        sa.Column("username", sa.String(128)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_failure")),
    )
    op.create_index("ix_sign_in_failure_ip_at", "sign_in_failure", ["client_ip", "at"])
    op.create_index("ix_sign_in_failure_username_at", "sign_in_failure", ["username", "at"])


def downgrade() -> None:
    op.drop_table("sign_in_failure")
    op.drop_table("identity_session")
    op.drop_table("device")
    op.drop_table("person")
