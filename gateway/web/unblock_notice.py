"""Telling a requester the outcome of their unblock request by e-mail, when the roster has their address.

Sent after the decision is committed: a mail server that is down costs the e-mail (audited, and the officer is
told), never the decision. The requester also sees every outcome on the request form (`unblock_form`).
"""

from __future__ import annotations

import smtplib

from flask import current_app, flash
from sqlalchemy import select

from gateway.notify.mail import Mailer
from gateway.store.models.people import PersonRecord
from gateway.store.request_outcomes import shown_to_requester
from gateway.store.models.unblock_requests import UnblockRequest
from gateway.web.audit_trail import audit

OUTCOMES = {
    "approved": "approved",
    "rejected": "not approved",
    "more_info": "waiting for more information from you",
}


def tell_requester(row: UnblockRequest) -> None:
    from gateway.web.app import db

    mailer: Mailer | None = current_app.config.get("GATEWAY_MAILER")
    if mailer is None or not row.username:
        return
    to = db().scalar(select(PersonRecord.email).where(PersonRecord.username == row.username, PersonRecord.active))
    if not to:
        return
    try:
        mailer.send(to, f"Your request for {row.host}: {OUTCOMES[row.status]}", _body(row))
    except (OSError, smtplib.SMTPException) as exc:
        current_app.logger.warning("unblock: could not e-mail %s about request %s: %s", to, row.id, exc)
        audit("unblock_mail_failed", target=f"unblock-request:{row.id}", detail={"error": str(exc)})
        flash(f"The requester could not be e-mailed ({exc}); they will see the outcome on the request form.")
        return
    audit("unblock_mail_sent", target=f"unblock-request:{row.id}", detail={"to": to, "status": row.status})


def _body(row: UnblockRequest) -> str:
    lines = [f"Hello {row.display_name},", "", f"Your request to unblock {row.url} is {OUTCOMES[row.status]}."]
    if row.status == "approved":
        lines.append("You can use it now (it may take a few seconds to start working).")
    note = shown_to_requester(row)
    if note:
        lines += ["", note]
    lines += ["", f"Request number {row.id}. The school web gateway."]
    return "\n".join(lines)
