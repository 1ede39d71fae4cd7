"""Recording what console users do: sign-ins, every view or export of log data."""

from __future__ import annotations

from typing import Any

from flask_login import current_user

from gateway.store.audit import record
from gateway.web import sites
from gateway.web.client_address import client_ip


def audit(action: str, *, target: str | None = None, detail: dict[str, Any] | None = None,
          actor: str | None = None, role: str | None = None) -> None:  # fmt: skip
    """Add an audit row in its own transaction, committed before the data is shown."""
    from gateway.web.app import db

    signed_in = current_user.is_authenticated
    session = db()
    record(
        session,
        actor or (current_user.username if signed_in else "anonymous"),
        action,
        target=target,
        detail=detail,
        role=role or (current_user.role if signed_in else None),
        client_ip=client_ip(),
        site=sites.audit_site(),
    )
    session.commit()
