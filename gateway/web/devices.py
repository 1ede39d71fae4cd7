"""The device register in the console: which devices are school-owned and which personal, and the headteacher's
approval of school devices for taking and posting pupils' pictures (audited)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import Session

from gateway.store.device_approval import ApprovalRefused, devices, set_approval
from gateway.web import sites
from gateway.web.client_address import client_ip
from gateway.web.roles import Permission, require

blueprint = Blueprint("devices", __name__, url_prefix="/devices")


def _db() -> Session:
    from gateway.web.app import db

    return db()


@blueprint.get("/")
@require(Permission.APPROVE_DEVICE)
def index():  # type: ignore[no-untyped-def]
    return render_template("consent/devices.html", rows=devices(_db(), sites.narrowed(request.args)),
                           site=sites.chosen(request.args), site_choices=sites.choices())  # fmt: skip


@blueprint.post("/<int:device_id>/approve")
@require(Permission.APPROVE_DEVICE)
def approve(device_id: int):  # type: ignore[no-untyped-def]
    return _set(device_id, approved=True)


@blueprint.post("/<int:device_id>/withdraw")
@require(Permission.APPROVE_DEVICE)
def withdraw(device_id: int):  # type: ignore[no-untyped-def]
    return _set(device_id, approved=False)


def _set(device_id: int, *, approved: bool):  # type: ignore[no-untyped-def]
    store = _db()
    try:
        device = set_approval(store, device_id, approved=approved, by=current_user.username, now=datetime.now(UTC),
                              role=current_user.role, client_ip=client_ip(), allowed_sites=sites.allowed())  # fmt: skip
    except LookupError:
        abort(404)
    except ApprovalRefused as exc:
        store.rollback()
        return render_template("error.html", title="Not approved", message=str(exc)), 400
    store.commit()
    flash(f"{device.name}: {'approved' if approved else 'approval withdrawn'}. Every gateway knows within seconds.")
    return redirect(url_for("devices.index"))
