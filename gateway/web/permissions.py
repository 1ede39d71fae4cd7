"""Two-key permissions for personal accounts on the WiFi: the headteacher grants (person, sites or lists, until
when, whether lesson time is excluded), the officer confirms the security controls are in place, and only then
does the grant go live in every proxy. Either can revoke it. Every step is audited. An account limited to some
sites of a trust grants, sees, confirms and revokes only the permissions of their people (another site's is a 404),
and the grant goes live only at the person's school."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import Session

from gateway.store.grants import grant_id
from gateway.store.models.permissions import PersonalPermission
from gateway.store.permissions import (PermissionRefused, confirm, domains_of, grant_permission, lists_of,
                                       permissions, revoke)  # fmt: skip
from gateway.web import sites
from gateway.web.audit_trail import audit
from gateway.web.roles import Permission, require
from gateway.web.unblock_scope import NoPolicy, running_policy

blueprint = Blueprint("permissions", __name__, url_prefix="/permissions")

MAX_TEXT = 2000
NAMES = re.compile(r"[\s,]+")


def _db() -> Session:
    from gateway.web.app import db

    return db()


def _names(field: str) -> list[str]:
    return [name for name in NAMES.split(request.form.get(field, "").strip().lower()) if name]


def _text(field: str) -> str:
    value = request.form.get(field, "").strip()
    if len(value) > MAX_TEXT:
        abort(400, f"{field} is longer than {MAX_TEXT} characters")
    return value


def _until(field: str) -> datetime:
    """The end of the day given (in the school's zone): a permission lasts to midnight after its last day."""
    try:
        last_day = date.fromisoformat(request.form.get(field, ""))
    except ValueError:
        abort(400, "give the last day of the permission as YYYY-MM-DD")
    zone = current_app.extensions["gateway.zone"]
    return datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)


@blueprint.get("/")
@require(Permission.VIEW_PERMISSIONS)
def index():  # type: ignore[no-untyped-def]
    return render_template("permissions/index.html", rows=permissions(_db(), sites.narrowed(request.args)),
                           lists_of=lists_of, domains_of=domains_of, grant_id=grant_id, now=datetime.now(UTC),
                           site=sites.chosen(request.args), site_choices=sites.choices())  # fmt: skip


@blueprint.post("/")
@require(Permission.GRANT_PERMISSION)
def grant():  # type: ignore[no-untyped-def]
    store = _db()
    try:
        row = grant_permission(
            store, running_policy(), username=request.form.get("username", "").strip().lower(),
            lists=_names("lists"), domains=_names("domains"), expires=_until("until"),
            exclude_lessons=request.form.get("exclude_lessons") == "yes", reason=_text("reason"),
            by=current_user.username, sites=sites.allowed(),
        )  # fmt: skip
    except (PermissionRefused, NoPolicy) as exc:
        store.rollback()
        return _refused(str(exc))
    store.commit()
    audit("permission_granted", target=f"permission-{row.id}",
          detail={"username": row.username, "lists": lists_of(row), "domains": domains_of(row),
                  "expires": row.expires.isoformat(), "exclude_lessons": row.exclude_lessons})  # fmt: skip
    flash(f"Permission {row.id} granted. It lets nothing through until the e-safety officer confirms the "
          "security controls are in place.")  # fmt: skip
    return redirect(url_for("permissions.index"))


@blueprint.post("/<int:number>/confirm")
@require(Permission.CONFIRM_PERMISSION)
def confirm_controls(number: int):  # type: ignore[no-untyped-def]
    store = _db()
    sites.require_visible(store.get(PersonalPermission, number))
    try:
        grant_number = confirm(store, running_policy(), number, by=current_user.username, note=_text("note"))
    except LookupError:
        abort(404)
    except (PermissionRefused, NoPolicy) as exc:
        store.rollback()
        return _refused(str(exc))
    store.commit()
    audit("permission_confirmed", target=f"permission-{number}", detail={"grant": grant_id(grant_number)})
    flash(f"Permission {number} confirmed: it is live as {grant_id(grant_number)} in every proxy within seconds.")
    return redirect(url_for("permissions.index"))


@blueprint.post("/<int:number>/revoke")
@require(Permission.REVOKE_PERMISSION)
def revoke_permission(number: int):  # type: ignore[no-untyped-def]
    store = _db()
    sites.require_visible(store.get(PersonalPermission, number))
    try:
        revoke(store, number, by=current_user.username)
    except LookupError:
        abort(404)
    except PermissionRefused as exc:
        store.rollback()
        return _refused(str(exc))
    store.commit()
    audit("permission_revoked", target=f"permission-{number}")
    flash(f"Permission {number} revoked. Every proxy stops applying it within a few seconds.")
    return redirect(url_for("permissions.index"))


def _refused(message: str):  # type: ignore[no-untyped-def]
    return render_template("error.html", title="Permission refused", message=message), 400
