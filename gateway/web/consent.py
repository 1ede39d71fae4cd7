"""The image-consent register in the console: the DPO records, amends and withdraws a pupil's consent with the day
and the written source; the headteacher and the e-safety officer read it; the staff who run the school's accounts
get an export (CSV, or a page to print) of every pupil's consent today. Views, exports and changes are audited."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from datetime import UTC, date, datetime

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import Session

from gateway.store.consent import (CHANGES, CHANNEL_TITLES, CHANNELS, ConsentRefused, PupilConsent, academic_year,
                                   audit_change, classes, history, pupil, record_consent, register,
                                   school_day, year_label)  # fmt: skip
from gateway.web import sites
from gateway.web.audit_trail import audit
from gateway.web.client_address import client_ip
from gateway.web.roles import Permission, require

blueprint = Blueprint("consent", __name__, url_prefix="/consent")

PRINT_CSS = Path(__file__).with_name("templates") / "consent" / "print.css"
# A cell a spreadsheet would run as a formula starts with one of these: it is written as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _db() -> Session:
    from gateway.web.app import db

    return db()


def _today() -> date:
    return school_day(datetime.now(UTC), current_app.extensions["gateway.zone"])


@blueprint.get("/")
@require(Permission.VIEW_CONSENT)
def index():  # type: ignore[no-untyped-def]
    today = _today()
    school_class = request.args.get("class") or None
    rows = register(_db(), today, school_class, sites.narrowed(request.args))
    audit("consent_viewed", target="consent", detail={"class": school_class} if school_class else None)
    return render_template("consent/index.html", rows=rows, today=today, year=year_label(academic_year(today)),
                           classes=classes(_db(), sites.allowed()), school_class=school_class,
                           site=sites.chosen(request.args), site_choices=sites.choices())  # fmt: skip


@blueprint.get("/pupil/<username>")
@require(Permission.VIEW_CONSENT)
def detail(username: str):  # type: ignore[no-untyped-def]
    today = _today()
    try:
        standing = pupil(_db(), username, today, sites.allowed())
    except ConsentRefused:
        abort(404)
    audit("consent_viewed", target=f"consent-{standing.username}")
    return render_template("consent/pupil.html", pupil=standing, rows=history(_db(), standing.username),
                           today=today, year=year_label(academic_year(today)), changes=CHANGES,
                           channels=CHANNELS, channel_titles=CHANNEL_TITLES, year_label=year_label)  # fmt: skip


@blueprint.post("/pupil/<username>")
@require(Permission.MANAGE_CONSENT)
def change(username: str):  # type: ignore[no-untyped-def]
    store = _db()
    form = request.form
    try:
        effective_on = date.fromisoformat(form.get("effective_on", ""))
    except ValueError:
        return _refused("Give the date of the written source as YYYY-MM-DD.")
    try:
        row = record_consent(
            store, username=username, change=form.get("change", ""), images=form.get("images") == "yes",
            video=form.get("video") == "yes", channels=form.getlist("channels"), effective_on=effective_on,
            source=form.get("source", ""), by=current_user.username, now=datetime.now(UTC), today=_today(),
            allowed_sites=sites.allowed(),
        )  # fmt: skip
    except ConsentRefused as exc:
        store.rollback()
        return _refused(str(exc))
    audit_change(store, row, by=current_user.username, role=current_user.role, client_ip=client_ip())
    store.commit()
    flash(f"Consent {row.change} for {row.username} ({year_label(row.academic_year)}).")
    return redirect(url_for("consent.detail", username=row.username))


@blueprint.post("/export.csv")
@require(Permission.EXPORT_CONSENT)
def export_csv():  # type: ignore[no-untyped-def]
    today = _today()
    rows = register(_db(), today, allowed_sites=sites.allowed())
    audit("consent_exported", target="consent", detail={"format": "csv", "day": today.isoformat(), "rows": len(rows)})
    return Response(_csv(rows, today), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="image-consent-{today}.csv"'})  # fmt: skip


@blueprint.get("/print")
@require(Permission.EXPORT_CONSENT)
def printable():  # type: ignore[no-untyped-def]
    today = _today()
    rows = register(_db(), today, allowed_sites=sites.allowed())
    audit("consent_exported", target="consent", detail={"format": "print", "day": today.isoformat(), "rows": len(rows)})
    return render_template("consent/print.html", rows=rows, today=today, year=year_label(academic_year(today)),
                           channels=CHANNELS, channel_titles=CHANNEL_TITLES)  # fmt: skip


@blueprint.get("/print.css")
@require(Permission.EXPORT_CONSENT)
def print_css() -> Response:
    # Served, not inlined: the console's Content-Security-Policy allows no inline styles.
    return Response(PRINT_CSS.read_text(), mimetype="text/css")


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv(rows: list[PupilConsent], today: date) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    standing = f"Consent on {today.isoformat()} ({year_label(academic_year(today))})"
    writer.writerow(["Pupil", "Username", "Class", "Images", "Video", *[CHANNEL_TITLES[c] for c in CHANNELS],
                     "Since", "Source", standing])  # fmt: skip
    for row in rows:
        channels = row.channels
        current = row.current
        writer.writerow([_cell(v) for v in (
            row.display_name, row.username, row.school_class, "yes" if row.images else "no",
            "yes" if row.video else "no", *("yes" if c in channels else "no" for c in CHANNELS),
            current.effective_on.isoformat() if current else "", current.source if current else "", row.summary(),
        )])  # fmt: skip
    return out.getvalue()


def _refused(message: str):  # type: ignore[no-untyped-def]
    return render_template("error.html", title="Consent not recorded", message=message), 400
