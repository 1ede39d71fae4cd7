"""Adding to the audit trail. There is deliberately nothing here to change or remove a row."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gateway.store.models.audit import AuditEvent


def audit_event(
    actor: str,
    action: str,
    *,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    role: str | None = None,
    client_ip: str | None = None,
) -> AuditEvent:
    return AuditEvent(
        at=datetime.now(UTC),
        actor=actor,
        actor_role=role,
        action=action,
        target=target,
        detail=json.dumps(detail, sort_keys=True, default=str) if detail else None,
        client_ip=client_ip,
    )


def record(session_or_engine: Session | Engine, actor: str, action: str, **kwargs: Any) -> None:
    """Add one audit row; with a Session it joins the caller's transaction, so a change and its record commit together."""
    event = audit_event(actor, action, **kwargs)
    if isinstance(session_or_engine, Session):
        session_or_engine.add(event)
        return
    with Session(session_or_engine) as session, session.begin():
        session.add(event)


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except OSError:
        return "cli"
