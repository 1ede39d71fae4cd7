"""A site on every record a school owns, the sites a console account may see, and on PostgreSQL the access log
partitioned by day.

Existing rows get the site `gateway db upgrade --site` names (the policy's `school.site`), else "main". On
PostgreSQL the access log is copied into a table partitioned by RANGE of `at` (one partition per UTC day, a default
partition for the rest: `gateway.store.partitions`); a partitioned table's keys must hold the partition column, so
its primary key is (id, at) and its row_id is unique with `at` (a replayed row carries the same `at`).

Revision ID: 0014_sites
Revises: 0013_consent_uploads
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import context, op

from gateway.store import partitions

revision: str = "0014_sites"
down_revision: str | Sequence[str] | None = "0013_consent_uploads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables that gain a site, and those that had one (nullable) since earlier revisions: both get it filled.
NEW_SITE = (
    "unblock_request", "curriculum_window", "device", "grant_record", "personal_permission", "person",
    "local_block", "audit_event", "image_consent",
)  # fmt: skip
HAD_SITE = ("access_log", "report", "incident", "ban", "upload_event")
ACCESS_LOG_INDEXES = {
    "ix_access_log_at": "at",
    "ix_access_log_username_at": "username, at",
    "ix_access_log_group_at": "group_name, at",
    "ix_access_log_class_at": "school_class, at",
    "ix_access_log_device_at": "device, at",
    "ix_access_log_host_rev_at": "host_rev, at",
    "ix_access_log_list_at": "list_name, at",
    "ix_access_log_action_at": "action, at",
    "ix_access_log_site_at": "site, at",
}


def _site() -> str:
    return str(context.config.attributes.get("site") or "main")


def upgrade() -> None:
    site = _site()
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in NEW_SITE:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("site", sa.String(64)))
    with op.batch_alter_table("console_user") as batch:
        # Space-separated sites the account may see; empty: every site (a trust-wide role).
        batch.add_column(sa.Column("sites", sa.String(255), nullable=False, server_default=""))
    for table in NEW_SITE + HAD_SITE:
        if table == "access_log" and postgres:
            continue  # filled as it is copied into the partitioned table
        op.execute(sa.text(f"UPDATE {table} SET site = :site WHERE site IS NULL").bindparams(site=site))
    if postgres:
        _partition_access_log(site)


def _drop_keys(table: str) -> None:
    op.execute(f"ALTER TABLE {table} DROP CONSTRAINT pk_access_log, DROP CONSTRAINT uq_access_log_row_id")
    for name in ACCESS_LOG_INDEXES:
        op.execute(f"DROP INDEX {name}")


def _add_indexes() -> None:
    for name, columns in ACCESS_LOG_INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON access_log ({columns})")


def _partition_access_log(site: str) -> None:
    bind = op.get_bind()
    sequence = bind.scalar(sa.text("SELECT pg_get_serial_sequence('access_log', 'id')"))
    op.execute("ALTER TABLE access_log RENAME TO access_log_unpartitioned")
    _drop_keys("access_log_unpartitioned")
    op.execute("CREATE TABLE access_log (LIKE access_log_unpartitioned INCLUDING DEFAULTS) PARTITION BY RANGE (at)")
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY access_log.id")
    op.execute("ALTER TABLE access_log ADD CONSTRAINT pk_access_log PRIMARY KEY (id, at), "
               "ADD CONSTRAINT uq_access_log_row_id UNIQUE (row_id, at)")  # fmt: skip
    _add_indexes()
    partitions.create_default(bind)
    days = bind.scalars(sa.text("SELECT DISTINCT (at AT TIME ZONE 'UTC')::date FROM access_log_unpartitioned"))
    for day in days:
        partitions.ensure_day(bind, day)
    partitions.ensure_ahead(bind, datetime.now(UTC).date())
    columns = [c["name"] for c in sa.inspect(bind).get_columns("access_log_unpartitioned")]
    chosen = ", ".join("COALESCE(site, :site)" if c == "site" else c for c in columns)
    op.execute(
        sa.text(f"INSERT INTO access_log ({', '.join(columns)}) SELECT {chosen} FROM access_log_unpartitioned")
        .bindparams(site=site)
    )
    op.execute("DROP TABLE access_log_unpartitioned")


def _unpartition_access_log() -> None:
    bind = op.get_bind()
    sequence = bind.scalar(sa.text("SELECT pg_get_serial_sequence('access_log', 'id')"))
    op.execute("CREATE TABLE access_log_unpartitioned (LIKE access_log INCLUDING DEFAULTS)")
    op.execute("INSERT INTO access_log_unpartitioned SELECT * FROM access_log")
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY access_log_unpartitioned.id")
    op.execute("DROP TABLE access_log")
    op.execute("ALTER TABLE access_log_unpartitioned RENAME TO access_log")
    op.execute("ALTER TABLE access_log ADD CONSTRAINT pk_access_log PRIMARY KEY (id), "
               "ADD CONSTRAINT uq_access_log_row_id UNIQUE (row_id)")  # fmt: skip
    _add_indexes()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _unpartition_access_log()
    with op.batch_alter_table("console_user") as batch:
        batch.drop_column("sites")
    for table in reversed(NEW_SITE):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("site")
