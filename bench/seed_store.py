"""A fresh SQLite access log ready for a bulk seed: migrated, its indexes dropped (rebuilt afterwards from sorted
data, much faster than kept up row by row) and journalling off. For the benchmarks that seed millions of rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.store.migrate import upgrade


def empty_log_for_seeding(path: Path) -> tuple[sqlite3.Connection, list[tuple[str, str]]]:
    """The open file, and the indexes dropped (name, CREATE statement) for the caller to build again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    upgrade(f"sqlite:///{path}")
    db = sqlite3.connect(path)
    indexes = db.execute("SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='access_log' "
                         "AND sql IS NOT NULL").fetchall()  # fmt: skip
    for name, _ in indexes:
        db.execute(f"DROP INDEX {name}")
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    return db, indexes
