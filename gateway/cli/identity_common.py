"""Helpers the identity command groups share: opening the store and reading the policy's groups."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy.orm import Session, sessionmaker

from gateway.cli.policy_cmd import load_or_exit
from gateway.identity.directory import ImportSummary
from gateway.policy.model import Policy
from gateway.store.audit import cli_actor, record, sha256_of
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


def load_policy(path: Path) -> Policy:
    return load_or_exit(path).policy


def finish_import(session: Session, summary: ImportSummary, *, path: Path, rows: int, noun: str, target: str,
                  dry_run: bool) -> None:  # fmt: skip
    """Commit an import with its audit row and say what changed, or, for a dry run, roll it back and say what
    would have."""
    if dry_run:
        session.rollback()
        click.echo(f"{path}: {rows} {noun}; would be: {summary}")
        return
    record(session, cli_actor(), "change", target=target,
           detail={"command": f"{target} import", **_import_audit_detail(path, rows, summary)})  # fmt: skip
    session.commit()
    click.echo(f"{path}: {rows} {noun} imported: {summary}")


def _import_audit_detail(path: Path, rows: int, summary: ImportSummary) -> dict[str, object]:
    """What an import changed, for the audit trail: counts, and the file by name and content hash."""
    return {
        "file": str(path.resolve()), "sha256": sha256_of(path), "rows": rows, "added": len(summary.added),
        "updated": len(summary.updated), "unchanged": summary.unchanged, "left": len(summary.left),
        "returned": len(summary.returned),
    }  # fmt: skip
