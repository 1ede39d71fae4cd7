"""The e-safety officer's and the headteacher's queues of reports, and the school's local blocks.

The officer's queue holds what traffic flagged (content, searches, flagged sites, illegal-list attempts) and what
people reported with "Report this page"; the officer dismisses a report with a reason, blocks its site or page for
the whole school in one click (a local block every proxy applies within seconds), or escalates it. The
headteacher's queue holds escalated reports and contact attempts filed by staff; the headteacher closes them with a
note, or blocks. Every view names pupils, so every view is audited, as is every decision.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway.policy.loader import PolicyError
from gateway.store.local_blocks import BlockRefused, block_site, blocks_in_force, place_of, remove_block
from gateway.store.models.access_log import AccessLogEntry
from gateway.store.models.reports import LocalBlock, Report
from gateway.store.reports import KINDS, STATUSES, WAITING, StaleReport, matches_of, move_report
from gateway.web import sites
from gateway.web.audit_trail import audit
from gateway.web.console_policy import console_policy
from gateway.web.roles import Permission, can, require

blueprint = Blueprint("reports", __name__, url_prefix="/reports")

MAX_NOTE = 2000
MAX_LISTED = 200
# The person's recent blocks and flags shown beside a report.
RECENT_DAYS = 7
RECENT_ROWS = 50
KIND_WORDS = {
    "page": "Page content",
    "search": "Search",
    "flagged_site": "Flagged site",
    "illegal_attempt": "Illegal-list attempt",
    "person": "Reported by a person",
    "contact": "Contact attempt",
}


def _db() -> Session:
    from gateway.web.app import db

    return db()


@blueprint.app_errorhandler(409)
def already_decided(error):  # type: ignore[no-untyped-def]
    return render_template("error.html", title="Already decided", message=error.description), 409


def _filters() -> dict[str, str]:
    status = request.args.get("status", "open")
    kind = request.args.get("kind", "")
    category = request.args.get("category", "").strip()[:64]
    site = sites.chosen(request.args)
    if status not in (*STATUSES, "all"):
        abort(400, description="Unknown status.")
    if kind and kind not in KINDS:
        abort(400, description="Unknown kind of report.")
    return {"status": status, "kind": kind, "category": category, "site": site}


def _listed(queue: str, filters: dict[str, str], waiting: tuple[str, ...]) -> list[Report]:
    query = select(Report).where(Report.queue == queue, *sites.conditions(Report.site))
    if filters["site"]:
        query = query.where(Report.site == filters["site"])
    status = filters["status"]
    if status == "open":
        query = query.where(Report.status.in_(waiting))
    elif status != "all":
        query = query.where(Report.status == status)
    if filters["kind"]:
        query = query.where(Report.kind == filters["kind"])
    if filters["category"]:
        query = query.where(Report.category == filters["category"])
    return list(_db().scalars(query.order_by(Report.last_seen_at.desc(), Report.id.desc()).limit(MAX_LISTED)))


def _queue_page(queue: str, title: str, waiting: tuple[str, ...]):  # type: ignore[no-untyped-def]
    filters = _filters()
    reports = _listed(queue, filters, waiting)
    audit("reports_viewed", target=f"report-queue:{queue}", detail={**filters, "shown": len(reports)})
    return render_template("reports/queue.html", title=title, queue=queue, reports=reports, filters=filters,
                           statuses=STATUSES, kinds=KINDS, kind_words=KIND_WORDS, matches_of=matches_of,
                           site_choices=sites.choices())  # fmt: skip


@blueprint.get("/")
@require(Permission.VIEW_REPORTS)
def officer_queue():  # type: ignore[no-untyped-def]
    return _queue_page("officer", "Reports to the e-safety officer", ("open",))


@blueprint.get("/head")
@require(Permission.VIEW_HEAD_REPORTS)
def head_queue():  # type: ignore[no-untyped-def]
    return _queue_page("headteacher", "Reports to the headteacher", WAITING)


def _report(number: int) -> Report:
    report = sites.require_visible(_db().get(Report, number))
    # Contact attempts are the headteacher's alone (the policy: staff report them to the headteacher).
    if report.kind == "contact" and not can(Permission.VIEW_HEAD_REPORTS):
        abort(403)
    return report


def _recent(report: Report, now: datetime) -> list[AccessLogEntry]:
    """The person's blocks and flags over the last week, newest first."""
    if report.username:
        who = AccessLogEntry.username == report.username
    elif report.device:
        who = AccessLogEntry.device == report.device
    elif report.client_ip:
        who = AccessLogEntry.client_ip == report.client_ip
    else:
        return []
    return list(_db().scalars(
        select(AccessLogEntry).where(who, or_(AccessLogEntry.action == "block", AccessLogEntry.action == "flag"),
                                     AccessLogEntry.at >= now - timedelta(days=RECENT_DAYS),
                                     *sites.conditions(AccessLogEntry.site))
        .order_by(AccessLogEntry.at.desc()).limit(RECENT_ROWS)))  # fmt: skip


def block_target() -> tuple[str | None, str | None, str]:
    """(list, rule blocking it, or None; why one-click blocks are off, or "") from the console's policy."""
    try:
        compiled = console_policy()
    except (OSError, PolicyError) as exc:
        return None, None, f"the policy file does not load ({str(exc).splitlines()[0]})"
    if compiled is None:
        return None, None, "the console was started without --policy, so it cannot tell which list blocks go to"
    name = compiled.policy.reports.block_list
    if name is None:
        return None, None, "the policy's `reports: block_list:` names no list, so there is nowhere to add a block"
    rule = next((r.id for r in compiled.policy.rules if name in r.lists and r.action.value == "block"), None)
    return name, rule, ""


def _places(report: Report) -> dict[str, str]:
    places = {}
    for scope in ("site", "url"):
        try:
            host, prefix = place_of(report.url, report.host, scope)
        except BlockRefused:
            continue
        places[scope] = host + (prefix or "")
    return places


@blueprint.get("/<int:number>")
@require(Permission.VIEW_REPORTS)
def detail(number: int):  # type: ignore[no-untyped-def]
    report = _report(number)
    recent = _recent(report, datetime.now(UTC))
    block_list, block_rule, blocks_off = block_target()
    audit("report_viewed", target=f"report:{number}", detail={"recent_rows": len(recent)})
    return render_template("reports/detail.html", report=report, recent=recent, matches=matches_of(report),
                           kind_words=KIND_WORDS, block_list=block_list, block_rule=block_rule,
                           blocks_off=blocks_off, places=_places(report), waiting=WAITING)  # fmt: skip


def _note(field: str, what: str) -> str:
    note = request.form.get(field, "").strip()
    if not note:
        abort(400, description=what)
    if len(note) > MAX_NOTE:
        abort(400, description=f"Keep it under {MAX_NOTE} characters.")
    return note


def _step(number: int, *, came_from: tuple[str, ...], status: str, note: str, queue: str | None = None) -> Report:
    store = _db()
    try:
        report = move_report(store, number, came_from=came_from, status=status, by=current_user.username, note=note,
                             now=datetime.now(UTC), queue=queue)  # fmt: skip
    except StaleReport as exc:
        store.rollback()
        abort(409, description=str(exc))
    store.commit()
    audit(f"report_{status}", target=f"report:{number}", detail={"note": note})
    flash(f"Report {number}: {status}.")
    return report


@blueprint.post("/<int:number>/dismiss")
@require(Permission.DECIDE_REPORT)
def dismiss(number: int):  # type: ignore[no-untyped-def]
    report = _report(number)
    if report.queue != "officer":
        abort(403)
    _step(number, came_from=("open",), status="dismissed",
          note=_note("reason", "Say why the report is dismissed."))  # fmt: skip
    return redirect(url_for("reports.officer_queue"))


@blueprint.post("/<int:number>/escalate")
@require(Permission.DECIDE_REPORT)
def escalate(number: int):  # type: ignore[no-untyped-def]
    report = _report(number)
    if report.queue != "officer":
        abort(403)
    _step(number, came_from=("open",), status="escalated", queue="headteacher",
          note=_note("note", "Say what the headteacher should know."))  # fmt: skip
    return redirect(url_for("reports.officer_queue"))


@blueprint.post("/<int:number>/close")
@require(Permission.CLOSE_REPORT)
def close(number: int):  # type: ignore[no-untyped-def]
    report = _report(number)
    if report.queue != "headteacher":
        abort(403)
    _step(number, came_from=WAITING, status="closed", note=_note("note", "Say what was done."))
    return redirect(url_for("reports.head_queue"))


@blueprint.post("/<int:number>/block")
@require(Permission.BLOCK_FROM_REPORT)
def block(number: int):  # type: ignore[no-untyped-def]
    report = _report(number)
    # Each blocks from their own queue: the officer from theirs, the headteacher from theirs.
    own = "officer" if current_user.role == "officer" else "headteacher"
    if report.queue != own:
        abort(403)
    block_list, _, blocks_off = block_target()
    if block_list is None:
        abort(400, description=f"One-click blocks are off: {blocks_off}.")
    scope = request.form.get("scope", "")
    reason = request.form.get("reason", "").strip() or f"Blocked by the e-safety officer after report {number}."
    if len(reason) > MAX_NOTE:
        abort(400, description=f"Keep the reason under {MAX_NOTE} characters.")
    store, now = _db(), datetime.now(UTC)
    try:
        made = block_site(store, number, by=current_user.username, scope=scope, reason=reason, now=now)
    except BlockRefused as exc:
        store.rollback()
        if "already decided" in str(exc):
            abort(409, description=str(exc))
        abort(400, description=str(exc))
    store.commit()
    place = made.host + (made.path_prefix or "")
    audit("report_blocked", target=f"report:{number}",
          detail={"local_block": made.id, "scope": scope, "place": place, "list": block_list, "reason": reason})
    flash(f"Report {number}: {place} is blocked for the whole school (list {block_list}); every proxy applies it "
          "within seconds.")  # fmt: skip
    return redirect(url_for("reports.officer_queue" if own == "officer" else "reports.head_queue"))


@blueprint.get("/blocks")
@require(Permission.MANAGE_LOCAL_BLOCKS)
def blocks():  # type: ignore[no-untyped-def]
    store = _db()
    # An account limited to some sites sees their blocks and those every school follows.
    mine = [or_(LocalBlock.site.is_(None), *sites.conditions(LocalBlock.site))] if sites.allowed() else []
    in_force = [b for b in blocks_in_force(store) if b.site is None or sites.visible(b.site)]
    lifted = list(store.scalars(select(LocalBlock).where(LocalBlock.removed_at.is_not(None), *mine)
                                .order_by(LocalBlock.removed_at.desc()).limit(50)))  # fmt: skip
    block_list, block_rule, blocks_off = block_target()
    audit("local_blocks_viewed", target="local-blocks", detail={"in_force": len(in_force)})
    return render_template("reports/blocks.html", in_force=in_force, lifted=lifted, block_list=block_list,
                           block_rule=block_rule, blocks_off=blocks_off, may_lift=sites.visible)  # fmt: skip


@blueprint.post("/blocks/<int:number>/remove")
@require(Permission.MANAGE_LOCAL_BLOCKS)
def remove(number: int):  # type: ignore[no-untyped-def]
    reason = _note("reason", "Say why the block is lifted.")
    store = _db()
    # Only a trust-wide account lifts a block every school follows.
    sites.require_visible(store.get(LocalBlock, number))
    try:
        lifted = remove_block(store, number, by=current_user.username, reason=reason, now=datetime.now(UTC))
    except BlockRefused as exc:
        store.rollback()
        abort(409, description=str(exc))
    store.commit()
    detail: dict[str, Any] = {"place": lifted.host + (lifted.path_prefix or ""), "reason": reason}
    audit("local_block_removed", target=f"local-block:{number}", detail=detail)
    flash(f"The block on {detail['place']} is lifted; every proxy applies it within seconds.")
    return redirect(url_for("reports.blocks"))
