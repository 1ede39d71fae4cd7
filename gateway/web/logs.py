"""The access log: filtered, sorted, paged; a person's day; CSV export of the filtered set. Every look is audited."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, current_app, render_template, request, stream_with_context, url_for
from flask_wtf import FlaskForm

from gateway.store.retention import csv_lines, query_rows
from gateway.web import log_queries, params, sites
from gateway.web.audit_trail import audit
from gateway.web.roles import Permission, require

blueprint = Blueprint("logs", __name__, url_prefix="/logs")


class ExportForm(FlaskForm):
    """Only the CSRF token: the filter rides along as hidden fields."""


def zone():  # type: ignore[no-untyped-def]
    return current_app.extensions["gateway.zone"]


@blueprint.route("")
@require(Permission.VIEW_LOG)
def index():  # type: ignore[no-untyped-def]
    from gateway.web.app import db

    log_filter = log_queries.LogFilter.from_args(request.args, zone(), sites.allowed())
    audit("view_log", target="access_log", detail={**log_filter.used(), "page": log_filter.page})
    rows, more = log_queries.page(db(), log_filter, zone())
    wider = {k: v for k, v in log_filter.used().items() if k not in ("since", "until")}
    return render_template(
        "logs.html",
        f=log_filter,
        period=log_filter.period(zone()),
        all_time_url=None if log_filter.all_time else url_for(".index", **wider, all_time="1"),
        default_days=log_queries.DEFAULT_DAYS,
        rows=rows,
        previous_url=url_for(".index", **log_filter.used(), page=log_filter.page - 1) if log_filter.page > 1 else None,
        next_url=url_for(".index", **log_filter.used(), page=log_filter.page + 1) if more else None,
        export_form=ExportForm(),
        actions=log_queries.ACTIONS,
        sorts=list(log_queries.SORTS),
        site_choices=sites.choices(),
    )


@blueprint.route("/export.csv", methods=["POST"])
@require(Permission.EXPORT_LOG)
def export_csv():  # type: ignore[no-untyped-def]
    ExportForm()  # CSRF is checked by CSRFProtect before the view runs
    log_filter = log_queries.LogFilter.from_args(request.form, zone(), sites.allowed())
    audit("export_log", target="access_log", detail={**log_filter.used(), "format": "csv"})
    rows = query_rows(current_app.extensions["gateway.engine"], log_queries.export_query(log_filter, zone()))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Response(
        stream_with_context(csv_lines(rows)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="access-log-{stamp}.csv"'},
    )


@blueprint.route("/person/<username>")
@require(Permission.VIEW_LOG)
def timeline(username: str):  # type: ignore[no-untyped-def]
    from gateway.web.app import db

    day = params.day(request.args.get("day"), datetime.now(zone()).date())
    audit("view_timeline", target=f"person:{username}", detail={"day": day.isoformat()})
    rows, more = log_queries.timeline(db(), username, day, zone(), allowed_sites=sites.allowed())
    return render_template("timeline.html", username=username, day=day, rows=rows, more=more, export_form=ExportForm())
