"""Uploads of images and video to social media the gateway saw, for the DPO and the headteacher: those posted
under the school-accounts permission (with the device) and those refused. Every look is audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, render_template, request
from sqlalchemy.orm import Session

from gateway.store.uploads import recent_uploads
from gateway.web import sites
from gateway.web.audit_trail import audit
from gateway.web.roles import Permission, require
from gateway.web.unblock_scope import NoPolicy, running_policy

blueprint = Blueprint("uploads", __name__, url_prefix="/uploads")

OUTCOMES = ("posted", "refused")
DAYS = 30


def _db() -> Session:
    from gateway.web.app import db

    return db()


@blueprint.get("/")
@require(Permission.VIEW_UPLOADS)
def index():  # type: ignore[no-untyped-def]
    outcome = request.args.get("outcome")
    outcome = outcome if outcome in OUTCOMES else None
    since = datetime.now(UTC) - timedelta(days=DAYS)
    rows = recent_uploads(_db(), since=since, outcome=outcome, allowed_sites=sites.narrowed(request.args))
    try:
        accounts = running_policy().policy.uploads.school_accounts
    except NoPolicy:
        accounts = None
    audit("uploads_viewed", target="uploads", detail={"outcome": outcome} if outcome else None)
    return render_template("consent/uploads.html", rows=rows, outcome=outcome, days=DAYS, accounts=accounts,
                           site=sites.chosen(request.args), site_choices=sites.choices())  # fmt: skip
