"""Subject-access export: everything the access log holds about one person, as CSV or JSON."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, abort, current_app, request, stream_with_context
from flask_wtf import FlaskForm

from gateway.store.retention import csv_lines, json_document, person_rows
from gateway.web import sites
from gateway.web.audit_trail import audit
from gateway.web.roles import Permission, require

blueprint = Blueprint("people", __name__, url_prefix="/people")


class PersonExportForm(FlaskForm):
    pass


def person_export_response(username: str, fmt: str) -> Response:
    engine = current_app.extensions["gateway.engine"]
    rows = person_rows(engine, username, sites.allowed())
    stamp = datetime.now(UTC)
    name = f"subject-access-{username}-{stamp:%Y%m%d}"
    if fmt == "json":
        body, mimetype, name = json_document(username, rows, exported_at=stamp), "application/json", name + ".json"
    else:
        body, mimetype, name = csv_lines(rows), "text/csv", name + ".csv"
    return Response(
        stream_with_context(body), mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@blueprint.route("/<username>/export", methods=["POST"])
@require(Permission.EXPORT_PERSON)
def export(username: str):  # type: ignore[no-untyped-def]
    PersonExportForm()
    fmt = request.form.get("format", "csv")
    if fmt not in ("csv", "json"):
        abort(400, description="format: csv or json")
    username = username.strip().lower()
    audit("export_person", target=f"person:{username}", detail={"format": fmt})
    return person_export_response(username, fmt)
