"""Supervised-only bans in the console: the bans in force and past, each with its supervised sessions; the
headteacher sets a ban's end or lifts it with a note; a teacher starts a supervised session for a banned pupil of a
class they teach (the officer and the headteacher for anyone), for this lesson or a set time, and can end it early.

The store (gateway.store.bans) makes each change and raises the `bans` counter every proxy follows; each change is
audited in the same transaction. Every proxy applies it within seconds.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway.decisions.types import PeriodKind
from gateway.policy.circumvention_model import Circumvention
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.loader import PolicyError
from gateway.policy.model import Weekday
from gateway.store.audit import record
from gateway.store.bans import (StaleBan, ban_in_force, end_supervision, lift_ban, normal_username, set_ban_end,
                                start_supervision)  # fmt: skip
from gateway.store.models.circumvention import Ban, SupervisedSession
from gateway.store.models.people import PersonRecord
from gateway.store.teaching import Taught, classes_taught
from gateway.web import sites
from gateway.web.audit_trail import audit
from gateway.web.client_address import client_ip
from gateway.web.console_policy import console_policy
from gateway.web.roles import Permission, require
from gateway.web.unblock_scope import NoPolicy, running_policy

blueprint = Blueprint("bans", __name__, url_prefix="/bans")

MAX_NOTE = 2000
MAX_USERNAME = 128
# A ban's end, as the headteacher may set it: within a school year from today.
LONGEST_BAN = timedelta(days=366)
# A supervised session "for a set time".
SHORTEST_SUPERVISION, LONGEST_SUPERVISION = 5, 240
PAST_SHOWN = 100
# Where a supervision form sends the teacher back to.
BACK = {"bans": "bans.index", "my_classes": "my_classes.index"}


def _db() -> Session:
    from gateway.web.app import db

    return db()


def _zone():  # type: ignore[no-untyped-def]
    return current_app.extensions["gateway.zone"]


def changed(store: Session, action: str, *, target: str, detail: dict[str, Any]) -> None:
    """The audit row of a change, in the change's own transaction: both commit or neither."""
    record(store, current_user.username, action, target=target, detail=detail, role=current_user.role,
           client_ip=client_ip())  # fmt: skip


def note(field: str, *, required: str | None = None) -> str:
    """A note from the form, at most MAX_NOTE characters; `required` is the message when it is missing."""
    value = request.form.get(field, "").strip()
    if required and not value:
        abort(400, description=required)
    if len(value) > MAX_NOTE:
        abort(400, description=f"Keep the note under {MAX_NOTE} characters.")
    return value


def ban_end(now: datetime) -> datetime | None:
    """The end the form asks for: the start of a school-local day after today, or None for "until lifted"."""
    if request.form.get("until_lifted"):
        return None
    raw = request.form.get("ends_on", "").strip()
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        abort(400, description="Give the day the ban ends as a date (YYYY-MM-DD), or choose \"until lifted\".")
    today = now.astimezone(_zone()).date()
    if day <= today:
        abort(400, description="The ban must end after today; to end it now, lift it.")
    if day > today + LONGEST_BAN:
        abort(400, description="A ban can be set at most a year ahead; choose \"until lifted\" for longer.")
    return datetime.combine(day, time(0), tzinfo=_zone()).astimezone(UTC)


def default_ban_days() -> int | None:
    """The policy's `circumvention.ban_days` (None: until lifted), or its default when the policy does not load."""
    try:
        compiled = console_policy()
    except (OSError, PolicyError):  # the form still works; the headteacher sees the date and may change it
        compiled = None
    return (compiled.policy.circumvention if compiled else Circumvention()).ban_days


def lesson_end(compiled: CompiledPolicy, now: datetime) -> datetime | None:
    """The end of the lesson under way at `now` in the school's timetable, or None outside lesson time."""
    local = compiled.calendar.local(now)
    if compiled.calendar.day_kind(local.date()) is not None:
        return None
    minute = local.hour * 60 + local.minute
    for period in compiled.policy.timetable.weekly.get(list(Weekday)[local.weekday()], []):
        if period.kind is PeriodKind.LESSON and period.start_minute <= minute < period.end_minute:
            midnight = datetime.combine(local.date(), time(0), tzinfo=compiled.calendar.zone)
            return (midnight + timedelta(minutes=period.end_minute)).astimezone(UTC)
    return None


def supervision_end(now: datetime) -> datetime:
    how = request.form.get("how", "")
    if how == "lesson":
        try:
            compiled = running_policy()
        except NoPolicy as exc:
            abort(400, description=f"One lesson cannot be worked out: {exc}. Choose a set time instead.")
        end = lesson_end(compiled, now)
        if end is None:
            abort(400, description="It is not lesson time now, by the school's timetable. Choose a set time instead.")
        return end
    if how == "minutes":
        raw = request.form.get("minutes", "").strip()
        if not raw.isdigit() or not SHORTEST_SUPERVISION <= int(raw) <= LONGEST_SUPERVISION:
            abort(400, description=f"Give the time as a whole number of minutes from {SHORTEST_SUPERVISION} to "
                                   f"{LONGEST_SUPERVISION}.")  # fmt: skip
        return now + timedelta(minutes=int(raw))
    abort(400, description="Choose \"for this lesson\" or \"for a set time\".")


def may_supervise(store: Session, username: str) -> bool:
    """The officer and the headteacher may supervise anyone at their sites; a teacher only the pupils of classes
    they teach (the class's name at its own school)."""
    if current_user.role != "teacher":
        return True
    pupil = store.execute(select(PersonRecord.site, PersonRecord.school_class)
                          .where(PersonRecord.username == username, PersonRecord.active)).first()  # fmt: skip
    return pupil is not None and pupil.school_class is not None and \
        Taught(pupil.site or "", pupil.school_class) in classes_taught(store, current_user.username, sites.allowed())


def _back() -> str:
    return url_for(BACK.get(request.form.get("back", ""), "bans.index"))


def _running(now: datetime):  # type: ignore[no-untyped-def]
    return (Ban.lifted_at.is_(None)) & (Ban.starts_at <= now) & or_(Ban.ends_at.is_(None), Ban.ends_at > now)


@blueprint.get("/")
@require(Permission.VIEW_INCIDENTS)
def index():  # type: ignore[no-untyped-def]
    store, now = _db(), datetime.now(UTC)
    site = sites.chosen(request.args)
    mine = [*sites.conditions(Ban.site), *([Ban.site == site] if site else [])]
    in_force = list(store.scalars(select(Ban).where(_running(now), *mine).order_by(Ban.created_at.desc())))
    past = list(store.scalars(select(Ban).where(~_running(now), *mine).order_by(Ban.created_at.desc())
                              .limit(PAST_SHOWN)))  # fmt: skip
    ids = [b.id for b in in_force + past]
    sessions: dict[int, list[SupervisedSession]] = {}
    for supervision in store.scalars(select(SupervisedSession).where(SupervisedSession.ban_id.in_(ids))
                                     .order_by(SupervisedSession.started_at.desc())):  # fmt: skip
        sessions.setdefault(supervision.ban_id, []).append(supervision)
    audit("bans_viewed", target="bans", detail={"in_force": len(in_force), "past": len(past)})
    days = default_ban_days()
    today = now.astimezone(_zone()).date()
    return render_template("bans/index.html", in_force=in_force, past=past, sessions=sessions, now=now,
                           default_end=(today + timedelta(days=days)).isoformat() if days else "",
                           shortest=SHORTEST_SUPERVISION, longest=LONGEST_SUPERVISION, site=site,
                           site_choices=sites.choices())  # fmt: skip


@blueprint.post("/<int:ban_id>/end")
@require(Permission.MANAGE_BANS)
def set_end(ban_id: int):  # type: ignore[no-untyped-def]
    store, now = _db(), datetime.now(UTC)
    sites.require_visible(store.get(Ban, ban_id))
    ends_at = ban_end(now)
    try:
        ban = set_ban_end(store, ban_id, ends_at=ends_at, by=current_user.username, now=now)
    except StaleBan as exc:
        store.rollback()
        abort(409, description=str(exc))
    changed(store, "ban_end_set", target=f"ban:{ban_id}",
            detail={"username": ban.username, "ends_at": ends_at.isoformat() if ends_at else None})  # fmt: skip
    store.commit()
    until = "until lifted" if ends_at is None else f"until {ends_at.astimezone(_zone()):%A %d %B %Y, %H:%M}"
    flash(f"The ban on {ban.display_name or ban.username} now lasts {until}; every proxy applies it within seconds.")
    return redirect(url_for("bans.index"))


@blueprint.post("/<int:ban_id>/lift")
@require(Permission.MANAGE_BANS)
def lift(ban_id: int):  # type: ignore[no-untyped-def]
    text = note("note", required="Say why the ban is lifted.")
    store, now = _db(), datetime.now(UTC)
    sites.require_visible(store.get(Ban, ban_id))
    try:
        ban = lift_ban(store, ban_id, by=current_user.username, note=text, now=now)
    except StaleBan as exc:
        store.rollback()
        abort(409, description=str(exc))
    changed(store, "ban_lifted", target=f"ban:{ban_id}", detail={"username": ban.username, "note": text})
    store.commit()
    flash(f"The ban on {ban.display_name or ban.username} is lifted; every proxy applies it within seconds.")
    return redirect(url_for("bans.index"))


@blueprint.post("/supervise")
@require(Permission.SUPERVISE)
def supervise():  # type: ignore[no-untyped-def]
    username = normal_username(request.form.get("username", ""))
    if not username or len(username) > MAX_USERNAME:
        abort(400, description="Say whose supervised session it is.")
    store, now = _db(), datetime.now(UTC)
    banned = ban_in_force(store, username, now)
    if banned is not None:
        sites.require_visible(banned)
    if not may_supervise(store, username):
        abort(403)
    ends_at = supervision_end(now)
    text = note("note")
    try:
        started = start_supervision(store, username=username, teacher=current_user.username, ends_at=ends_at,
                                    note=text, now=now)  # fmt: skip
    except ValueError as exc:
        store.rollback()
        abort(409, description=f"No supervised session started: {exc}.")
    changed(store, "supervision_started", target=f"person:{username}",
            detail={"supervision": started.id, "ban": started.ban_id, "ends_at": ends_at.isoformat(),
                    "how": request.form.get("how"), "note": text})  # fmt: skip
    store.commit()
    flash(f"Supervised session for {username} until {ends_at.astimezone(_zone()):%H:%M}: their web access follows "
          "the normal rules until then (every proxy applies it within seconds), then the ban applies again.")
    return redirect(_back())


@blueprint.post("/supervised/<int:supervision_id>/end")
@require(Permission.SUPERVISE)
def end_early(supervision_id: int):  # type: ignore[no-untyped-def]
    store, now = _db(), datetime.now(UTC)
    supervision = store.get(SupervisedSession, supervision_id)
    if supervision is None or not sites.visible(getattr(store.get(Ban, supervision.ban_id), "site", None)):
        abort(404)
    if supervision.teacher != current_user.username and not may_supervise(store, supervision.username):
        abort(403)
    try:
        end_supervision(store, supervision_id, by=current_user.username, now=now)
    except StaleBan as exc:
        store.rollback()
        abort(409, description=str(exc))
    changed(store, "supervision_ended", target=f"person:{supervision.username}",
            detail={"supervision": supervision_id, "ban": supervision.ban_id})  # fmt: skip
    store.commit()
    flash(f"The supervised session for {supervision.username} has ended: the ban applies again.")
    return redirect(_back())

