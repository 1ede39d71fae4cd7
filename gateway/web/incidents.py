"""Circumvention incidents in the console: the list (open, confirmed, dismissed; by technique and person; whether the
notice went), and an incident's evidence with the person's recent activity. The headteacher confirms an incident,
which bans the pupil (supervised-only access) until the end date given, or dismisses it with a reason: a false
positive goes back to the officer, whose list shows the dismissed ones "to tune".

Every view names a pupil and is audited; the recent activity is a read of the access log and is audited as one.
Decisions are audited in their own transaction.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from gateway.circumvention.incident import Technique
from gateway.store.bans import ban_in_force
from gateway.store.incidents import STATUSES, TECHNIQUE_NAMES, StaleIncident, confirm_incident, dismiss_incident
from gateway.store.models.access_log import AccessLogEntry
from gateway.store.models.circumvention import Incident
from gateway.web import sites
from gateway.web.audit_trail import audit
from gateway.web.bans import ban_end, changed, default_ban_days, note
from gateway.web.roles import Permission, require

blueprint = Blueprint("incidents", __name__, url_prefix="/incidents")

MAX_LISTED = 200
MAX_PERSON = 128
RECENT_ROWS = 50
NOTICE_WORDS = {
    "due": "waiting to be sent",
    "sending": "being sent",
    "sent": "sent",
    "summarised": "in a summary",
    "failed": "could not be sent (retried)",
    "none": "none",
}
TECHNIQUES = {t.value: TECHNIQUE_NAMES[t] for t in Technique}


def _db() -> Session:
    from gateway.web.app import db

    return db()


def _zone():  # type: ignore[no-untyped-def]
    return current_app.extensions["gateway.zone"]


def _filters() -> dict[str, str]:
    status = request.args.get("status", "open")
    technique = request.args.get("technique", "")
    person = request.args.get("person", "").strip()
    if status not in (*STATUSES, "all"):
        abort(400, description="Unknown status: choose open, confirmed, dismissed or all.")
    if technique and technique not in TECHNIQUES:
        abort(400, description="Unknown technique.")
    if len(person) > MAX_PERSON or not person.isprintable():
        abort(400, description=f"Give a person's name or username, at most {MAX_PERSON} characters.")
    return {"status": status, "technique": technique, "person": person, "site": sites.chosen(request.args)}


def _listed(filters: dict[str, str]) -> list[Incident]:
    query = select(Incident).where(*sites.conditions(Incident.site))
    if filters["site"]:
        query = query.where(Incident.site == filters["site"])
    if filters["status"] != "all":
        query = query.where(Incident.status == filters["status"])
    if filters["technique"]:
        query = query.where(Incident.technique == filters["technique"])
    if filters["person"]:
        # A literal search: % and _ in what was typed match themselves.
        typed = filters["person"].lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(or_(
            func.lower(Incident.username).like(f"%{typed}%", escape="\\"),
            func.lower(Incident.display_name).like(f"%{typed}%", escape="\\"),
            Incident.device == filters["person"], Incident.client_ip == filters["person"],
        ))  # fmt: skip
    return list(_db().scalars(query.order_by(Incident.last_seen_at.desc(), Incident.id.desc()).limit(MAX_LISTED)))


@blueprint.get("/")
@require(Permission.VIEW_INCIDENTS)
def index():  # type: ignore[no-untyped-def]
    filters = _filters()
    incidents = _listed(filters)
    store = _db()
    mine = sites.conditions(Incident.site)
    failed = store.scalar(select(func.count()).select_from(Incident).where(Incident.notice_state == "failed", *mine))
    to_tune = store.scalar(select(func.count()).select_from(Incident).where(Incident.status == "dismissed", *mine))
    audit("incidents_viewed", target="incidents", detail={**filters, "shown": len(incidents)})
    return render_template("incidents/index.html", incidents=incidents, filters=filters, statuses=STATUSES,
                           techniques=TECHNIQUES, notice_words=NOTICE_WORDS, failed=failed,
                           to_tune=to_tune, site_choices=sites.choices())  # fmt: skip


def _incident(number: int) -> Incident:
    return sites.require_visible(_db().get(Incident, number))  # type: ignore[no-any-return]


def _who(incident: Incident):  # type: ignore[no-untyped-def]
    """The person's access-log rows: by username, else device, else client address (as the incident's person)."""
    if incident.username:
        return AccessLogEntry.username == incident.username, f"person:{incident.username}"
    if incident.device:
        return AccessLogEntry.device == incident.device, f"device:{incident.device}"
    if incident.client_ip:
        return AccessLogEntry.client_ip == incident.client_ip, f"ip:{incident.client_ip}"
    return None, None


def _evidence(incident: Incident) -> dict[str, object]:
    try:
        extra = json.loads(incident.evidence) if incident.evidence else {}
    except ValueError:
        return {"evidence": incident.evidence}
    return extra if isinstance(extra, dict) else {"evidence": extra}


@blueprint.get("/<int:number>")
@require(Permission.VIEW_INCIDENTS)
def detail(number: int):  # type: ignore[no-untyped-def]
    incident = _incident(number)
    store, now = _db(), datetime.now(UTC)
    audit("incident_viewed", target=f"incident:{number}")
    who, target = _who(incident)
    recent: list[AccessLogEntry] = []
    if who is not None:
        recent = list(store.scalars(select(AccessLogEntry).where(who, *sites.conditions(AccessLogEntry.site))
                                    .order_by(AccessLogEntry.at.desc())
                                    .limit(RECENT_ROWS)))  # fmt: skip
        # A look at the log, recorded as any other (gateway.web.logs).
        audit("view_log", target=target, detail={"incident": number, "rows": len(recent)})
    banned = ban_in_force(store, incident.username, now) if incident.username else None
    days = default_ban_days()
    today = now.astimezone(_zone()).date()
    return render_template("incidents/detail.html", incident=incident, recent=recent, banned=banned,
                           evidence=_evidence(incident), techniques=TECHNIQUES, notice_words=NOTICE_WORDS,
                           default_end=(today + timedelta(days=days)).isoformat() if days else "",
                           ban_days=days)  # fmt: skip


@blueprint.post("/<int:number>/confirm")
@require(Permission.DECIDE_INCIDENT)
def confirm(number: int):  # type: ignore[no-untyped-def]
    _incident(number)
    store, now = _db(), datetime.now(UTC)
    ends_at = ban_end(now)
    text = note("note")
    try:
        ban = confirm_incident(store, number, by=current_user.username, note=text, now=now, ban_ends_at=ends_at)
    except StaleIncident as exc:
        store.rollback()
        abort(409, description=str(exc))
    changed(store, "incident_confirmed", target=f"incident:{number}",
            detail={"note": text, "ban": ban.id if ban else None, "username": ban.username if ban else None,
                    "ban_ends_at": ban.ends_at.isoformat() if ban and ban.ends_at else None})  # fmt: skip
    store.commit()
    if ban is None:
        flash(f"Incident {number} confirmed. Nobody was banned: it names no signed-in person, and a ban follows a "
              "username.")  # fmt: skip
    else:
        until = ban.ends_at.astimezone(_zone()).strftime("%A %d %B %Y, %H:%M") if ban.ends_at else "it is lifted"
        flash(f"Incident {number} confirmed: {ban.display_name or ban.username} is on supervised-only access until "
              f"{until}. Every proxy applies it within seconds.")  # fmt: skip
    return redirect(url_for("incidents.detail", number=number))


@blueprint.post("/<int:number>/dismiss")
@require(Permission.DECIDE_INCIDENT)
def dismiss(number: int):  # type: ignore[no-untyped-def]
    _incident(number)
    text = note("reason", required="Say why it is a false positive: the officer uses it to tune the detector.")
    store, now = _db(), datetime.now(UTC)
    try:
        dismiss_incident(store, number, by=current_user.username, note=text, now=now)
    except StaleIncident as exc:
        store.rollback()
        abort(409, description=str(exc))
    changed(store, "incident_dismissed", target=f"incident:{number}", detail={"reason": text})
    store.commit()
    flash(f"Incident {number} dismissed: it is in the officer's list to tune.")
    return redirect(url_for("incidents.index"))
