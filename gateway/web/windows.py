"""Curriculum-activity windows in the console: a teacher asks to open sites or lists for one of their classes in
lesson time (one lesson, or a few days); the headteacher sees what it would have let through over the last week,
approves (perhaps narrowing the dates) or rejects, and can close an open window early; the officer sees them all,
read-only. Windows from teachers the policy pre-authorises open at once and are listed for the headteacher until
seen. Every step is audited. A window belongs to its class's school: an account limited to some sites sees and
decides only theirs (another site's window is a 404), and a teacher asks only for classes at their account's sites.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import Session

from gateway.decisions.impact import Impact, RefusedGrant, proposed_grant
from gateway.decisions.types import PeriodKind
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.model import Period, Weekday
from gateway.store.grants import grant_id
from gateway.store.impact_rows import DEFAULT_DAYS, preview_from_log
from gateway.store.models.windows import CurriculumWindow, WindowStatus
from gateway.store.teaching import classes_taught
from gateway.store.windows import (WindowRefused, approve, ask, close, domains_of, lists_of, mark_seen, reject,
                                   scope_of, unseen_preauthorised, windows, withdraw)  # fmt: skip
from gateway.web import sites
from gateway.web.audit_trail import audit
from gateway.web.roles import Permission, require
from gateway.web.unblock_scope import NoPolicy, running_policy

blueprint = Blueprint("windows", __name__, url_prefix="/windows")

MAX_TEXT = 2000
NAMES = re.compile(r"[\s,]+")


def _db() -> Session:
    from gateway.web.app import db

    return db()


def _text(field: str) -> str:
    value = request.form.get(field, "").strip()
    if len(value) > MAX_TEXT:
        raise WindowRefused(f"{field} is longer than {MAX_TEXT} characters")
    return value


def _names(field: str) -> list[str]:
    return [name for name in NAMES.split(_text(field).lower()) if name]


def _day(field: str, source: Mapping[str, str] | None = None) -> date:
    try:
        return date.fromisoformat((request.form if source is None else source).get(field, ""))
    except ValueError:
        raise WindowRefused(f"give the {field.replace('_', ' ')} as YYYY-MM-DD") from None


def liftable_lists(compiled: CompiledPolicy) -> list[str]:
    return [name for i, name in enumerate(compiled.names)
            if name in compiled.policy.lists and not (1 << i) & compiled.unliftable_mask]  # fmt: skip


def lessons_on(compiled: CompiledPolicy, day: date) -> list[Period]:
    """The timetable's lesson periods on a school day (none on a weekend, holiday or closure)."""
    if compiled.calendar.day_kind(day) is not None:
        return []
    periods = compiled.policy.timetable.weekly.get(list(Weekday)[day.weekday()], [])
    return sorted((p for p in periods if p.kind is PeriodKind.LESSON), key=lambda p: p.start_minute)


def period_label(period: Period) -> str:
    end = period.end if isinstance(period.end, str) else period.end.strftime("%H:%M")
    return f"{period.start:%H:%M}-{end}"


def _at(compiled: CompiledPolicy, day: date, minute: int) -> datetime:
    """A wall-clock minute of a school day (24:00 being the next midnight) as a UTC instant."""
    return (datetime.combine(day, time(0), tzinfo=compiled.calendar.zone) + timedelta(minutes=minute)).astimezone(UTC)


def _span(compiled: CompiledPolicy) -> tuple[datetime, datetime]:
    """The window the form asks for: one lesson on a day, or whole days (the grant keeps it to lesson time)."""
    if request.form.get("when") == "lesson":
        day = _day("day")
        label = request.form.get("period", "")
        lesson = next((p for p in lessons_on(compiled, day) if period_label(p) == label), None)
        if lesson is None:
            raise WindowRefused(f"there is no lesson {label[:20]!r} on {day.isoformat()} in the school's timetable")
        return _at(compiled, day, lesson.start_minute), _at(compiled, day, lesson.end_minute)
    if request.form.get("when") == "days":
        return _days(compiled, request.form)
    raise WindowRefused("choose a lesson on a day, or a range of days")


def _days(compiled: CompiledPolicy, source: Mapping[str, str]) -> tuple[datetime, datetime]:
    first, last = _day("first_day", source), _day("last_day", source)
    if last < first:
        raise WindowRefused("the last day is before the first")
    if first < compiled.calendar.local(datetime.now(UTC)).date():
        raise WindowRefused("the first day is in the past")
    return _at(compiled, first, 0), _at(compiled, last + timedelta(days=1), 0)


def state(row: CurriculumWindow, now: datetime) -> str:
    if row.status == WindowStatus.OPEN:
        return "ended" if row.ends <= now else ("open" if row.starts <= now else "opens later")
    return str(row.status)


def _shown() -> dict[str, object]:
    return {"lists_of": lists_of, "domains_of": domains_of, "grant_id": grant_id, "state": state,
            "now": datetime.now(UTC)}  # fmt: skip


@blueprint.get("/mine")
@require(Permission.ASK_WINDOW)
def mine():  # type: ignore[no-untyped-def]
    return _teacher_page()


def _teacher_page(problem: str | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    """The teacher's form and their own windows; `day` (from the query) picks whose lessons the form offers."""
    store = _db()
    compiled, lessons, day = None, [], None
    try:
        compiled = running_policy()
        today = compiled.calendar.local(datetime.now(UTC)).date()
        day = _day("day", request.args) if request.args.get("day") else _posted_day() or today
        lessons = [period_label(p) for p in lessons_on(compiled, day)]
    except (NoPolicy, WindowRefused) as exc:
        problem, status = str(exc), 400 if isinstance(exc, WindowRefused) else status
    taught = classes_taught(store, current_user.username, sites.allowed())
    return render_template(
        "windows/mine.html", rows=windows(store, teacher=current_user.username, sites=sites.allowed()),
        classes=sorted({c.name for c in taught}), schools=sorted({c.site for c in taught}),
        lists=liftable_lists(compiled) if compiled else [], day=day, lessons=lessons, problem=problem,
        form=request.form, **_shown(),
    ), status  # fmt: skip


def _posted_day() -> date | None:
    """The day a refused form asked about, so it comes back showing that day's lessons."""
    try:
        return date.fromisoformat(request.form.get("day", ""))
    except ValueError:
        return None


@blueprint.post("/mine")
@require(Permission.ASK_WINDOW)
def ask_window():  # type: ignore[no-untyped-def]
    store, now = _db(), datetime.now(UTC)
    try:
        compiled = running_policy()
        starts, ends = _span(compiled)
        row = ask(store, compiled, teacher=current_user.username, school_class=request.form.get("school_class", ""),
                  lists=request.form.getlist("lists"), domains=_names("domains"), purpose=_text("purpose"),
                  starts=starts, ends=ends, now=now, site=request.form.get("site") or None,
                  sites=sites.allowed())  # fmt: skip
    except (WindowRefused, NoPolicy) as exc:
        store.rollback()
        return _teacher_page(str(exc), 400)
    store.commit()
    audit("window_opened_preauthorised" if row.preauthorised else "window_asked", target=f"window-{row.id}",
          detail={"class": row.school_class, "lists": lists_of(row), "domains": domains_of(row),
                  "starts": row.starts.isoformat(), "ends": row.ends.isoformat(), "purpose": row.purpose,
                  "grant": row.grant_number})  # fmt: skip
    if row.preauthorised:
        flash(f"Window {row.id} is open for {row.school_class} in lesson time (you are pre-authorised); the "
              "headteacher is shown it.")  # fmt: skip
    else:
        flash(f"Window {row.id} asked for: the headteacher decides.")
    return redirect(url_for("windows.mine"))


@blueprint.post("/<int:number>/withdraw")
@require(Permission.ASK_WINDOW)
def withdraw_window(number: int):  # type: ignore[no-untyped-def]
    def step(store: Session, now: datetime) -> str:
        withdraw(store, number, teacher=current_user.username, now=now)
        return f"Window {number} withdrawn."

    return _step(number, "window_withdrawn", step, "windows.mine")


@blueprint.get("/")
@require(Permission.VIEW_WINDOWS)
def index():  # type: ignore[no-untyped-def]
    store, shown = _db(), sites.narrowed(request.args)
    rows = windows(store, sites=shown)
    return render_template("windows/index.html", asked=[r for r in rows if r.status == WindowStatus.ASKED],
                           unseen=unseen_preauthorised(store, shown), rows=rows, site=sites.chosen(request.args),
                           site_choices=sites.choices(), **_shown())  # fmt: skip


@blueprint.get("/<int:number>")
@require(Permission.VIEW_WINDOWS)
def detail(number: int):  # type: ignore[no-untyped-def]
    row = sites.require_visible(_db().get(CurriculumWindow, number))
    impact, problem = _impact(row)
    audit("window_viewed", target=f"window-{number}", detail={"preview_days": DEFAULT_DAYS if impact else None})
    return render_template("windows/detail.html", row=row, impact=impact, impact_problem=problem, days=DEFAULT_DAYS,
                           **_shown())  # fmt: skip


def _impact(row: CurriculumWindow) -> tuple[Impact | None, str | None]:
    """What the window, open all week, would have let through in lesson time over the last week of its school's
    log."""
    try:
        compiled = running_policy()
        extra = proposed_grant(compiled, **scope_of(row))
    except (NoPolicy, RefusedGrant) as exc:
        return None, str(exc)
    return preview_from_log(_db(), compiled, extra, now=datetime.now(UTC),
                            sites=(row.site,) if row.site else sites.allowed()), None  # fmt: skip


@blueprint.post("/<int:number>/approve")
@require(Permission.DECIDE_WINDOW)
def approve_window(number: int):  # type: ignore[no-untyped-def]
    def step(store: Session, now: datetime) -> str:
        compiled = running_policy()
        narrowed = (_days(compiled, request.form) if request.form.get("first_day") or request.form.get("last_day")
                    else (None, None))  # fmt: skip
        row = approve(store, compiled, number, by=current_user.username, note=_text("note"), now=now,
                      starts=narrowed[0], ends=narrowed[1])  # fmt: skip
        return (f"Window {number} approved: open to {row.school_class} in lesson time as "
                f"{grant_id(row.grant_number or 0)}.")

    return _step(number, "window_approved", step, "windows.index")


@blueprint.post("/<int:number>/reject")
@require(Permission.DECIDE_WINDOW)
def reject_window(number: int):  # type: ignore[no-untyped-def]
    def step(store: Session, now: datetime) -> str:
        reject(store, number, by=current_user.username, note=_text("note"), now=now)
        return f"Window {number} rejected."

    return _step(number, "window_rejected", step, "windows.index")


@blueprint.post("/<int:number>/close")
@require(Permission.DECIDE_WINDOW)
def close_window(number: int):  # type: ignore[no-untyped-def]
    def step(store: Session, now: datetime) -> str:
        close(store, number, by=current_user.username, now=now)
        return f"Window {number} closed: every proxy stops applying it within a few seconds."

    return _step(number, "window_closed", step, "windows.index")


@blueprint.post("/<int:number>/seen")
@require(Permission.DECIDE_WINDOW)
def seen(number: int):  # type: ignore[no-untyped-def]
    def step(store: Session, now: datetime) -> str:
        mark_seen(store, number, now=now)
        return f"Window {number} marked as seen."

    return _step(number, "window_seen", step, "windows.index")


def _step(number: int, action: str, step, back: str):  # type: ignore[no-untyped-def]
    """Run one decision in a transaction; a refused one changes nothing and says why; another site's is a 404."""
    store, now = _db(), datetime.now(UTC)
    sites.require_visible(store.get(CurriculumWindow, number))
    try:
        message = step(store, now)
    except LookupError:
        store.rollback()
        abort(404)
    except (WindowRefused, NoPolicy) as exc:
        store.rollback()
        return render_template("error.html", title="Not done", message=str(exc)), 400
    store.commit()
    row = store.get(CurriculumWindow, number)
    assert row is not None
    audit(action, target=f"window-{number}",
          detail={"status": str(row.status), "starts": row.starts.isoformat(), "ends": row.ends.isoformat(),
                  "note": row.decision_note, "grant": row.grant_number})  # fmt: skip
    flash(message)
    return redirect(url_for(back))
