"""The audit trail, read-only: there is no route that changes or removes a row (the database refuses anyway)."""

from __future__ import annotations

import json

from flask import Blueprint, render_template, request, url_for
from sqlalchemy import select

from gateway.store.models.audit import AuditEvent
from gateway.web import params, sites
from gateway.web.audit_trail import audit
from gateway.web.roles import Permission, require

blueprint = Blueprint("audit", __name__, url_prefix="/audit")
PAGE_SIZE = 100


def detail_text(event: AuditEvent) -> str:
    """A row's detail as the page shows it: the sentence a proxy's summary of failed sign-ins carries (it counts
    many attempts in one row), anything else as recorded."""
    if event.action == "proxy_sign_in_failed" and event.detail:
        try:
            return str(json.loads(event.detail)["summary"])
        except (ValueError, KeyError, TypeError):
            pass
    return event.detail or ""


def audit_page(session, actor: str, action: str, page: int, target: str = ""):  # type: ignore[no-untyped-def]
    """A page of the trail of the account's sites, newest first; `target` matches what was looked at or changed,
    and everything in it ("person:amy", "policy", "lists")."""
    query = select(AuditEvent).where(*sites.conditions(AuditEvent.site))
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action == action)
    if target:
        query = query.where(AuditEvent.target.startswith(target, autoescape=True))
    query = query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).offset((page - 1) * PAGE_SIZE)
    rows = list(session.scalars(query.limit(PAGE_SIZE + 1)))
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


@blueprint.route("")
@require(Permission.VIEW_AUDIT)
def index():  # type: ignore[no-untyped-def]
    from gateway.web.app import db

    actor = request.args.get("actor", "").strip()[:128]
    action = request.args.get("action", "").strip()[:32]
    page = params.page_number(request.args.get("page"))
    target = request.args.get("target", "").strip()[:255]
    audit("view_audit", target="audit_event", detail={"actor": actor, "action": action, "target": target,
                                                      "page": page})  # fmt: skip
    session = db()
    rows, more = audit_page(session, actor, action, page, target)
    links = {"actor": actor or None, "action": action or None, "target": target or None}
    mine = sites.conditions(AuditEvent.site)
    return render_template(
        "audit.html",
        rows=rows,
        detail_text=detail_text,
        actor=actor,
        action=action,
        target=target,
        actions=session.scalars(select(AuditEvent.action).where(*mine).distinct().order_by(AuditEvent.action)).all(),
        actors=session.scalars(select(AuditEvent.actor).where(*mine).distinct().order_by(AuditEvent.actor)).all(),
        previous_url=url_for(".index", **links, page=page - 1) if page > 1 else None,
        next_url=url_for(".index", **links, page=page + 1) if more else None,
    )
