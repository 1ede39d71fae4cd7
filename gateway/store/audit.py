"""Adding to the audit trail. There is deliberately nothing here to change or remove a row."""

from __future__ import annotations

import difflib
import getpass
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from gateway.store.models.audit import AuditEvent

# A policy diff kept in the trail is cut at this many characters: enough to read a change, not a whole file.
MAX_DIFF_CHARS = 4000


def audit_values(
    actor: str,
    action: str,
    *,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    role: str | None = None,
    client_ip: str | None = None,
    site: str | None = None,
) -> dict[str, Any]:
    """One audit row as plain values, for a Session, a Core insert or the spool."""
    return {
        "at": datetime.now(UTC),
        "actor": actor[:128],
        "actor_role": role,
        "action": action,
        "target": target[:255] if target else None,
        "detail": json.dumps(detail, sort_keys=True, default=str) if detail else None,
        "client_ip": client_ip,
        "site": site,
    }


def audit_event(actor: str, action: str, **kwargs: Any) -> AuditEvent:
    return AuditEvent(**audit_values(actor, action, **kwargs))


def record(session_or_engine: Session | Engine, actor: str, action: str, **kwargs: Any) -> None:
    """Add one audit row; with a Session it joins the caller's transaction, so a change and its record commit together."""
    event = audit_event(actor, action, **kwargs)
    if isinstance(session_or_engine, Session):
        session_or_engine.add(event)
        return
    with Session(session_or_engine) as session, session.begin():
        session.add(event)


def record_if_reachable(db_url: str, actor: str, action: str, **kwargs: Any) -> str | None:
    """Record a change made outside the database (list files, a policy file) when the store is there.

    Returns None when recorded, else why not: the caller warns and carries on, since a school may check a policy
    or import lists on a laptop with no gateway database. A missing SQLite file is not created.
    """
    from gateway.store.engine import NotMigrated, make_engine, normalise_url, require_migrated

    url = make_url(normalise_url(db_url))
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not Path(url.database).exists():
            return f"no database at {url.database}"
    connect_args = {"connect_timeout": 5} if url.get_backend_name() == "postgresql" else {}
    engine = make_engine(db_url, connect_args=connect_args)
    try:
        require_migrated(engine)
        record(engine, actor, action, **kwargs)
    except NotMigrated as exc:
        return str(exc)
    except Exception as exc:  # unreachable, refused, locked: the change itself stands
        orig = getattr(exc, "orig", None) or exc
        return f"database at {engine.url.render_as_string(hide_password=True)} not reachable: " + (
            str(orig).strip().splitlines() or [type(orig).__name__]
        )[0]
    finally:
        engine.dispose()
    return None


def cli_actor() -> str:
    """`cli:<account>`; under sudo, the account that ran sudo too (`cli:root (sudo by alice)`)."""
    try:
        user = getpass.getuser()
    except OSError:
        user = "?"
    sudo_user = os.environ.get("SUDO_USER")
    return f"cli:{user}" + (f" (sudo by {sudo_user})" if sudo_user and sudo_user != user else "")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def short_diff(before: str, after: str, name: str) -> str:
    """A unified diff of two texts, cut to MAX_DIFF_CHARS."""
    diff = "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), f"{name} (before)", name, n=2
        )
    )
    if len(diff) > MAX_DIFF_CHARS:
        diff = diff[:MAX_DIFF_CHARS] + f"\n… ({len(diff) - MAX_DIFF_CHARS} more characters of diff not kept)"
    return diff
