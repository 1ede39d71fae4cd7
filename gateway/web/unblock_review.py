"""The officer's and headteacher's queues of unblock requests.

The officer (DSL) triages: rejects with a reason, asks for more information, or forwards with a recommendation.
The headteacher decides what is forwarded: approves (narrowing what is unblocked, for whom or for how long, never
widening it), which adds the grant every proxy follows, or rejects. Every step is audited and the requester is
told by e-mail when the roster has their address.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import Session

from gateway.decisions.impact import Impact
from gateway.policy.store_grants import compile_store_grants
from gateway.store.impact_rows import preview_from_log
from gateway.store.models.unblock_requests import UnblockRequest
from gateway.store.unblock_requests import (AUDIENCES, DURATIONS, EXTENTS, HEAD_QUEUE, OFFICER_QUEUE, StaleRequest,
                                            approve, officer_step, queue, recent_blocks, reject)  # fmt: skip
from gateway.web import sites
from gateway.web.audit_trail import audit
from gateway.web.roles import Permission, require
from gateway.web.unblock_form import AUDIENCE_WORDS, DURATION_WORDS, EXTENT_WORDS
from gateway.web.unblock_notice import tell_requester
from gateway.web.unblock_scope import NoPolicy, grant_for, running_policy

blueprint = Blueprint("unblock", __name__, url_prefix="/unblock")

MAX_NOTE = 2000


def _db() -> Session:
    from gateway.web.app import db

    return db()


def _words() -> dict[str, object]:
    return {"audience_words": AUDIENCE_WORDS, "duration_words": DURATION_WORDS, "extent_words": EXTENT_WORDS}


@blueprint.app_errorhandler(409)
def already_moved(error):  # type: ignore[no-untyped-def]
    return render_template("error.html", title="Already decided", message=error.description), 409


@blueprint.get("/")
@require(Permission.REVIEW_UNBLOCK)
def queues():  # type: ignore[no-untyped-def]
    store = _db()
    mine = sites.narrowed(request.args)
    return render_template("unblock/queues.html", officer=queue(store, OFFICER_QUEUE, mine),
                           head=queue(store, HEAD_QUEUE, mine), site=sites.chosen(request.args),
                           site_choices=sites.choices(), **_words())  # fmt: skip


def _request(number: int) -> UnblockRequest:
    return sites.require_visible(_db().get(UnblockRequest, number))  # type: ignore[no-any-return]


@blueprint.get("/<int:number>")
@require(Permission.REVIEW_UNBLOCK)
def detail(number: int):  # type: ignore[no-untyped-def]
    row = _request(number)
    now = datetime.now(UTC)
    blocks = recent_blocks(_db(), row, now)
    impact, impact_problem = _impact(row, now)
    audit("unblock_request_viewed", target=f"unblock-request:{number}", detail={"recent_blocks": len(blocks)})
    return render_template("unblock/detail.html", row=row, blocks=blocks, audiences=AUDIENCES, durations=DURATIONS,
                           extents=EXTENTS, impact=impact, impact_problem=impact_problem, **_words())  # fmt: skip


def _impact(row: UnblockRequest, now: datetime) -> tuple[Impact | None, str | None]:
    """What the request, granted as asked, would have let through over the last week of the log."""
    try:
        compiled = running_policy()
        grant = grant_for(row, audience=row.audience, duration=row.duration, extent=row.extent, by="preview",
                          now=now, compiled=compiled)  # fmt: skip
    except (NoPolicy, ValueError) as exc:
        return None, str(exc)
    extra, problems = compile_store_grants(compiled, [grant])
    if problems:
        return None, problems[0]
    return preview_from_log(_db(), compiled, extra, now=now, sites=(row.site,) if row.site else sites.allowed()), None


def _note() -> str:
    note = request.form.get("note", "").strip()
    if len(note) > MAX_NOTE:
        abort(400, description=f"Keep the note under {MAX_NOTE} characters.")
    return note


@blueprint.post("/<int:number>/triage")
@require(Permission.TRIAGE_UNBLOCK)
def triage(number: int):  # type: ignore[no-untyped-def]
    action, note = request.form.get("action", ""), _note()
    steps = {"reject": "rejected", "more_info": "more_info", "forward": "forwarded"}
    if action not in steps:
        abort(400, description="Choose reject, ask for more information, or forward.")
    recommendation = request.form.get("recommendation") if action == "forward" else None
    if action == "forward" and recommendation not in ("approve", "reject"):
        abort(400, description="Say whether you recommend approving or rejecting.")
    if action in ("reject", "more_info") and not note:
        abort(400, description="Say why, or what you need to know: the requester sees it.")
    store = _db()
    try:
        row = officer_step(store, number, status=steps[action], by=current_user.username, note=note,
                           now=datetime.now(UTC), recommendation=recommendation)  # fmt: skip
    except StaleRequest as exc:
        store.rollback()
        abort(409, description=str(exc))
    store.commit()
    audit(f"unblock_{steps[action]}", target=f"unblock-request:{number}",
          detail={"note": note} | ({"recommendation": recommendation} if recommendation else {}))  # fmt: skip
    if action != "forward":
        tell_requester(row)
    flash(f"Request {number}: {steps[action].replace('_', ' ')}.")
    return redirect(url_for("unblock.queues"))


def _no_wider(field: str, choices: tuple[str, ...], asked: str) -> str:
    chosen = request.form.get(field, asked)
    if chosen not in choices or choices.index(chosen) > choices.index(asked):
        abort(400, description=f"The {field} may be narrowed, never widened beyond what was asked.")
    return chosen


@blueprint.post("/<int:number>/decide")
@require(Permission.DECIDE_UNBLOCK)
def decide(number: int):  # type: ignore[no-untyped-def]
    action, note = request.form.get("action", ""), _note()
    store, now = _db(), datetime.now(UTC)
    row = _request(number)
    try:
        if action == "approve":
            extent = _no_wider("extent", EXTENTS, row.extent)
            audience = _no_wider("audience", AUDIENCES, row.audience)
            duration = _no_wider("duration", DURATIONS, row.duration)
            try:
                grant = grant_for(row, audience=audience, duration=duration, extent=extent,
                                  by=current_user.username, now=now, compiled=running_policy())  # fmt: skip
            except ValueError as exc:
                abort(400, description=str(exc))
            row, number_granted = approve(store, number, grant, by=current_user.username, note=note, now=now)
            detail = {"grant": number_granted, "extent": extent, "audience": audience, "duration": duration,
                      "hosts": grant.domains, "expires": grant.expires.isoformat(), "note": note}  # fmt: skip
        elif action == "reject":
            if not note:
                abort(400, description="Say why: the requester sees it.")
            row = reject(store, number, by=current_user.username, note=note, now=now)
            detail = {"note": note}
        else:
            abort(400, description="Choose approve or reject.")
    except StaleRequest as exc:
        store.rollback()
        abort(409, description=str(exc))
    store.commit()
    audit(f"unblock_{row.status}", target=f"unblock-request:{number}", detail=detail)
    tell_requester(row)
    flash(f"Request {number}: {row.status}.")
    return redirect(url_for("unblock.queues"))

