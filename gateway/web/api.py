"""JSON API for a trust's reporting tools: the same data and the same roles as the pages.

A tool signs in with HTTP Basic (a console account); a browser session works too. Read-only, so there are no
forms to forge; every call is audited like the page it mirrors.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

from flask import Blueprint, abort, current_app, g, jsonify, request
from flask_login import current_user

from gateway.store.retention import row_dict
from gateway.web import log_queries, params, sites
from gateway.web.audit_trail import audit
from gateway.web.auth import check_password
from gateway.web.people import person_export_response
from gateway.web.roles import Permission, allowed

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")


def _caller() -> tuple[str, str, str] | None:
    if current_user.is_authenticated:
        return current_user.username, current_user.role, current_user.sites
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username or not auth.password:
        return None
    user = check_password(auth.username.strip().lower()[:128], auth.password[:1024], via="api")
    return (user.username, user.role, user.sites) if user is not None else None


def api(permission: Permission) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            caller = _caller()
            if caller is None:
                response = jsonify(error="sign in: HTTP Basic with a console account")
                response.status_code = 401
                response.headers["WWW-Authenticate"] = 'Basic realm="school web gateway"'
                return response
            if not allowed(caller[1], permission):
                return jsonify(error="your role does not give access to this data"), 403
            g.api_actor = caller[:2]
            # A tool signed in with HTTP Basic has no session user: its account's sites limit it all the same.
            g.api_sites = sites.parse(caller[2])
            return view(*args, **kwargs)

        return guarded

    return decorate


def _audit(action: str, **kwargs: Any) -> None:
    actor, role = g.api_actor
    audit(action, actor=actor, role=role, **kwargs)


def _json_row(entry: Any) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row_dict(entry).items()}


@blueprint.route("/log")
@api(Permission.VIEW_LOG)
def log():  # type: ignore[no-untyped-def]
    from gateway.web.app import db

    log_filter = log_queries.LogFilter.from_args(request.args, current_app.extensions["gateway.zone"], sites.allowed())
    _audit("view_log", target="access_log", detail={**log_filter.used(), "page": log_filter.page, "via": "api"})
    rows, more = log_queries.page(db(), log_filter, current_app.extensions["gateway.zone"])
    return jsonify(page=log_filter.page, more=more, filter=log_filter.used(), rows=[_json_row(r) for r in rows])


@blueprint.route("/people/<username>/timeline")
@api(Permission.VIEW_LOG)
def timeline(username: str):  # type: ignore[no-untyped-def]
    from gateway.web.app import db

    zone = current_app.extensions["gateway.zone"]
    day = params.day(request.args.get("day"), datetime.now(zone).date())
    _audit("view_timeline", target=f"person:{username}", detail={"day": day.isoformat(), "via": "api"})
    rows, more = log_queries.timeline(db(), username, day, zone, allowed_sites=sites.allowed())
    return jsonify(person=username, day=day.isoformat(), more=more, rows=[_json_row(r) for r in rows])


@blueprint.route("/dashboard")
@api(Permission.VIEW_DASHBOARD)
def dashboard():  # type: ignore[no-untyped-def]
    from gateway.web.app import db
    from gateway.web.dashboard import days_arg

    days = days_arg()
    site = sites.chosen(request.args)
    _audit("view_dashboard", target="access_log", detail={"days": days, "site": site, "via": "api"})
    figures = log_queries.dashboard(db(), current_app.extensions["gateway.zone"], days=days, site=site,
                                    allowed_sites=sites.allowed())  # fmt: skip
    return jsonify(figures.as_json())


@blueprint.route("/audit")
@api(Permission.VIEW_AUDIT)
def audit_trail():  # type: ignore[no-untyped-def]
    from gateway.web.app import db
    from gateway.web.audit import audit_page

    page = params.page_number(request.args.get("page"))
    actor = request.args.get("actor", "").strip()[:128]
    action = request.args.get("action", "").strip()[:32]
    target = request.args.get("target", "").strip()[:255]
    _audit("view_audit", target="audit_event",
           detail={"actor": actor, "action": action, "target": target, "page": page, "via": "api"})  # fmt: skip
    rows, more = audit_page(db(), actor, action, page, target)
    events = [
        {"at": e.at.isoformat(), "actor": e.actor, "role": e.actor_role, "action": e.action, "target": e.target,
         "detail": e.detail, "client_ip": e.client_ip}  # fmt: skip
        for e in rows
    ]
    return jsonify(page=page, more=more, events=events)


@blueprint.route("/people/<username>/export")
@api(Permission.EXPORT_PERSON)
def person_export(username: str):  # type: ignore[no-untyped-def]
    fmt = request.args.get("format", "json")
    if fmt not in ("csv", "json"):
        abort(400, description="format: csv or json")
    _audit("export_person", target=f"person:{username.lower()}", detail={"format": fmt, "via": "api"})
    return person_export_response(username.lower(), fmt)
