"""Helpers the identity command groups share: opening the store and reading the policy's groups."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy.orm import Session, sessionmaker

from gateway.store.audit import sha256_of
from gateway.store.engine import NotMigrated, make_engine, require_migrated, session_factory

policy_option = click.option(
    "--policy", "policy_path", type=click.Path(path_type=Path), default="policies/default.yaml", show_default=True,
    help="The school's policy file (its groups and networks).",
)


@contextmanager
def open_store(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    try:
        try:
            require_migrated(engine)
        except NotMigrated as exc:
            raise click.ClickException(str(exc)) from None
        yield session_factory(engine)
    finally:
        engine.dispose()


def load_policy(path: Path):  # type: ignore[no-untyped-def]
    from gateway.policy.loader import PolicyError, load_policy as load

    try:
        return load(path).policy
    except PolicyError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        raise SystemExit(1) from None


def import_audit_detail(path: Path, rows: int, summary) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """What an import changed, for the audit trail: counts, and the file by name and content hash."""
    return {
        "file": str(path.resolve()), "sha256": sha256_of(path), "rows": rows, "added": len(summary.added),
        "updated": len(summary.updated), "unchanged": summary.unchanged, "left": len(summary.left),
        "returned": len(summary.returned),
    }  # fmt: skip
