"""The teacher's view: today's blocks and flags for the pupils of the classes they teach, and their own requests;
which of those pupils are on supervised-only access, with a supervised session to start or end.

Only the classes the roster's Teaches column gives the signed-in teacher (at the sites their account may see: a
class is a name at one school, and a trust's schools each have a 5B), only pupils, only today (a teacher is not
a log reviewer: the officer has the full log). Every view is audited as a look at log data.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, current_app, render_template, request
from flask_login import current_user

from gateway.store.bans import bans_in_force, supervisions_running
from gateway.store.class_activity import DETAIL_LIMIT, class_day
from gateway.store.teaching import Taught, classes_taught
from gateway.store.unblock_requests import requests_by
from gateway.web import sites
from gateway.web.audit_trail import audit
from gateway.web.bans import LONGEST_SUPERVISION, SHORTEST_SUPERVISION
from gateway.web.roles import Permission, require

blueprint = Blueprint("my_classes", __name__, url_prefix="/my-classes")

MAX_CLASS_NAME = 64  # as the roster's class columns
MY_REQUESTS = 20


def _chosen(taught: list[Taught]) -> list[Taught]:
    """The classes asked for by `?class=` (at `?site=` when the teacher has a class of that name at two schools),
    all taught ones without it; another class is 403, junk 400."""
    asked, site = request.args.get("class"), sites.chosen(request.args)
    if asked is None or asked == "":
        return taught
    if len(asked) > MAX_CLASS_NAME or not asked.isprintable() or asked != asked.strip():
        abort(400, f"class: a class name of at most {MAX_CLASS_NAME} characters, as the roster spells it")
    shown = [c for c in taught if c.name == asked and (not site or c.site == site)]
    if not shown:
        abort(403)
    return shown


@blueprint.get("/")
@require(Permission.VIEW_MY_CLASSES)
def index():  # type: ignore[no-untyped-def]
    from gateway.web.app import db

    session = db()
    taught = classes_taught(session, current_user.username, sites.allowed())
    shown = _chosen(taught)
    mine = requests_by(session, username=current_user.username, client_ip="", limit=MY_REQUESTS)
    zone = current_app.extensions["gateway.zone"]
    today = datetime.now(zone).date()
    pupils = []
    if shown:
        audit("view_class_activity", target=f"class:{','.join(c.name for c in shown)}",
              detail={"day": today.isoformat(), "sites": sorted({c.site for c in shown})})  # fmt: skip
        pupils = class_day(session, shown, today, zone, sites=sites.allowed())
    now = datetime.now(UTC)
    banned = {b.username: b for b in bans_in_force(session, now)}
    supervised = {s.username: s for s in supervisions_running(session, now)}
    return render_template("my_classes/index.html", taught=taught, shown=shown, pupils=pupils, today=today,
                           requests=mine, limit=DETAIL_LIMIT, banned=banned, supervised=supervised, now=now,
                           shortest=SHORTEST_SUPERVISION, longest=LONGEST_SUPERVISION,
                           schools=len({c.site for c in taught}) > 1)  # fmt: skip
