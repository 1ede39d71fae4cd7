"""The grants in force (from unblock requests, `gateway grants add` or any other source), who approved them and
when they end; the headteacher can end one early, and every proxy drops it within seconds. An account limited to
some sites of a trust sees their grants and those every school follows, and ends only their own (another's is a
404)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user

from gateway.store.grants import end_grant, grant_id, grants_in_force
from gateway.store.models.grants import GrantRecord
from gateway.web import sites
from gateway.web.audit_trail import audit
from gateway.web.roles import Permission, require

blueprint = Blueprint("grants", __name__, url_prefix="/grants")


@blueprint.get("/")
@require(Permission.REVIEW_UNBLOCK)
def in_force():  # type: ignore[no-untyped-def]
    from gateway.web.app import db

    grants, problems = grants_in_force(db(), datetime.now(UTC))
    shown = [g for g in grants if g.site is None or sites.visible(g.site)]
    return render_template("unblock/grants.html", grants=shown, problems=problems if not sites.allowed() else [],
                           may_end=lambda g: sites.visible(g.site))  # fmt: skip


@blueprint.post("/<int:number>/end")
@require(Permission.END_GRANT)
def end(number: int):  # type: ignore[no-untyped-def]
    from gateway.web.app import db

    store = db()
    sites.require_visible(store.get(GrantRecord, number))
    if not end_grant(store, number, by=current_user.username):
        abort(404)
    store.commit()
    audit("grant_ended", target=grant_id(number), detail={"early": True})
    flash(f"{grant_id(number)} ended. Every proxy stops applying it within a few seconds.")
    return redirect(url_for("grants.in_force"))
