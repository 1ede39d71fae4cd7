"""Curriculum-activity windows: a teacher asks to open sites or lists for one of their classes, in lesson time,
from a start to an end; the headteacher approves (perhaps narrowing the dates), which writes the store grant every
proxy follows, or rejects. The headteacher can close an open window early (its grant ends) and the teacher can
withdraw one still waiting. A teacher the policy pre-authorises opens a window at once; it stays in the
headteacher's "opened without approval" list until seen.

Every check is made here, whatever the form offered: the class must be one the roster says the teacher teaches,
and lists the policy marks unliftable (or illegal content) can never be opened. A class is a name at one school: the
window, and the grant it writes, belong to the class's school, so only that school's gateway opens it to only that
school's class of that name.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.decisions.types import PeriodKind
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.model import ExceptionGrant
from gateway.policy.store_grants import compile_store_grants
from gateway.store.grants import add_grant, end_grant
from gateway.store.models.windows import CurriculumWindow, WindowStatus
from gateway.store.sites import within
from gateway.store.teaching import Taught, classes_taught

MAX_PURPOSE = 2000
# A window never reaches beyond lesson time ("as part of a curriculum activity").
LESSON_TIME = [PeriodKind.LESSON]


class WindowRefused(ValueError):
    """A window that may not be asked for, decided, closed or withdrawn, and why."""


def ask(session: Session, compiled: CompiledPolicy, *, teacher: str, school_class: str, lists: list[str],
        domains: list[str], purpose: str, starts: datetime, ends: datetime, now: datetime, site: str | None = None,
        sites: tuple[str, ...] = ()) -> CurriculumWindow:  # fmt: skip
    """A teacher's request for a class they teach at `sites` (every site for none), at `site` when they teach a
    class of that name at two schools; open at once (with its grant) when the policy pre-authorises the teacher."""
    teacher = teacher.lower()
    taught = _taught(session, teacher, school_class, site, sites)
    purpose = purpose.strip()
    if not purpose:
        raise WindowRefused("say what the activity is for")
    if len(purpose) > MAX_PURPOSE:
        raise WindowRefused(f"keep the purpose under {MAX_PURPOSE} characters")
    _check_times(compiled, starts, ends, now)
    preauthorised = teacher in compiled.policy.curriculum.preauthorised_teachers
    row = CurriculumWindow(
        site=taught.site or None, created_at=now, teacher=teacher, school_class=school_class, lists=json.dumps(lists),
        domains=json.dumps(domains), purpose=purpose, starts=starts, ends=ends, status=WindowStatus.ASKED,
        preauthorised=preauthorised,
    )  # fmt: skip
    _check(compiled, _as_grant(row, "window-new", by=teacher))
    session.add(row)
    session.flush()
    if preauthorised:
        row.status = WindowStatus.OPEN
        row.grant_number = add_grant(session, _as_grant(row, f"window-{row.id}", by=teacher), created_by=teacher,
                                     now=now, site=row.site)  # fmt: skip
    return row


def approve(session: Session, compiled: CompiledPolicy, number: int, *, by: str, note: str, now: datetime,
            starts: datetime | None = None, ends: datetime | None = None) -> CurriculumWindow:  # fmt: skip
    """The headteacher opens the window, as asked or narrowed to a shorter span; returns it with its grant."""
    row = _get(session, number)
    if row.teacher == by.lower():
        raise WindowRefused("a window needs someone other than the teacher who asked to approve it")
    # The roster may have changed since the teacher asked (a new term, a teacher who has left).
    if Taught(row.site or "", row.school_class) not in classes_taught(session, row.teacher):
        raise WindowRefused(f"the roster no longer says {row.teacher} teaches {row.school_class}")
    starts, ends = starts or row.starts, ends or row.ends
    if starts < row.starts or ends > row.ends:
        raise WindowRefused("a window may be narrowed, never widened beyond what was asked")
    _check_times(compiled, starts, ends, now)
    _move(session, number, WindowStatus.ASKED, status=WindowStatus.OPEN, starts=starts, ends=ends, decided_by=by,
          decided_at=now, decision_note=note.strip())  # fmt: skip
    grant = _as_grant(row, f"window-{number}", by=by)
    # Checked again: the policy may have marked a list unliftable since the teacher asked.
    _check(compiled, grant)
    row.grant_number = add_grant(session, grant, created_by=by, now=now, site=row.site)
    return row


def reject(session: Session, number: int, *, by: str, note: str, now: datetime) -> CurriculumWindow:
    if not note.strip():
        raise WindowRefused("say why: the teacher sees it")
    return _move(session, number, WindowStatus.ASKED, status=WindowStatus.REJECTED, decided_by=by, decided_at=now,
                 decision_note=note.strip())  # fmt: skip


def close(session: Session, number: int, *, by: str, now: datetime) -> CurriculumWindow:
    """End an open window early: its grant ends in every proxy within seconds."""
    row = _move(session, number, WindowStatus.OPEN, status=WindowStatus.CLOSED, closed_by=by, closed_at=now)
    if row.grant_number is not None:
        end_grant(session, row.grant_number, by=by, now=now)
    return row


def withdraw(session: Session, number: int, *, teacher: str, now: datetime) -> CurriculumWindow:
    """The teacher who asked takes back a request nobody has decided yet."""
    if _get(session, number).teacher != teacher.lower():
        raise WindowRefused(f"window {number} was asked for by another teacher")
    return _move(session, number, WindowStatus.ASKED, status=WindowStatus.WITHDRAWN, closed_by=teacher,
                 closed_at=now)  # fmt: skip


def mark_seen(session: Session, number: int, *, now: datetime) -> CurriculumWindow:
    """The headteacher has seen a window a pre-authorised teacher opened without approval."""
    moved = session.execute(
        update(CurriculumWindow)
        .where(CurriculumWindow.id == number, CurriculumWindow.preauthorised,
               CurriculumWindow.seen_by_head_at.is_(None))
        .values(seen_by_head_at=now)
    ).rowcount  # fmt: skip
    if not moved:
        _get(session, number)
        raise WindowRefused(f"window {number} is not waiting to be seen")
    return _refreshed(session, number)


def windows(session: Session, *, teacher: str | None = None, sites: tuple[str, ...] = ()) -> list[CurriculumWindow]:
    """Windows of `sites` (every site for none), newest first; with `teacher`, only theirs."""
    query = select(CurriculumWindow).where(*within(CurriculumWindow.site, sites)).order_by(CurriculumWindow.id.desc())
    if teacher is not None:
        query = query.where(CurriculumWindow.teacher == teacher.lower())
    return list(session.scalars(query))


def unseen_preauthorised(session: Session, sites: tuple[str, ...] = ()) -> list[CurriculumWindow]:
    return list(session.scalars(
        select(CurriculumWindow)
        .where(CurriculumWindow.preauthorised, CurriculumWindow.seen_by_head_at.is_(None),
               *within(CurriculumWindow.site, sites))
        .order_by(CurriculumWindow.id.desc())
    ))  # fmt: skip


def lists_of(row: CurriculumWindow) -> list[str]:
    return list(json.loads(row.lists))


def domains_of(row: CurriculumWindow) -> list[str]:
    return list(json.loads(row.domains))


def scope_of(row: CurriculumWindow) -> dict[str, object]:
    """The window as ExceptionGrant fields but its times and reason (what the impact preview replays)."""
    return {"classes": [row.school_class], "periods": LESSON_TIME, "lists": lists_of(row), "domains": domains_of(row)}


def _taught(session: Session, teacher: str, name: str, site: str | None, sites: tuple[str, ...]) -> Taught:
    """The class `name` (at `site`) among those the roster says `teacher` teaches at `sites`."""
    matching = [c for c in classes_taught(session, teacher, sites) if c.name == name and site in (None, c.site)]
    if not matching:
        raise WindowRefused(f"the roster does not say you teach {name!r}" + (f" at {site}" if site else ""))
    if len(matching) > 1:
        raise WindowRefused(f"you teach a {name} at {' and '.join(c.site for c in matching)}: say which school")
    return matching[0]


def _check_times(compiled: CompiledPolicy, starts: datetime, ends: datetime, now: datetime) -> None:
    if ends <= starts:
        raise WindowRefused("the window ends before it starts")
    if ends <= now:
        raise WindowRefused("the window is over already: choose a lesson or dates still to come")
    local = compiled.calendar.local
    days = (local(ends - timedelta(microseconds=1)).date() - local(starts).date()).days + 1
    longest = compiled.policy.curriculum.max_window_days
    if days > longest:
        raise WindowRefused(f"a window covers at most {longest} days (this one covers {days})")


def _get(session: Session, number: int) -> CurriculumWindow:
    row = session.get(CurriculumWindow, number)
    if row is None:
        raise LookupError(number)
    return row


def _move(session: Session, number: int, came_from: WindowStatus, **values: object) -> CurriculumWindow:
    """Change a window only from the state the step expects, so two people deciding at once cannot both win."""
    moved = session.execute(
        update(CurriculumWindow).where(CurriculumWindow.id == number, CurriculumWindow.status == came_from)
        .values(**values)
    ).rowcount  # fmt: skip
    if not moved:
        row = _get(session, number)
        raise WindowRefused(f"window {number} is {row.status}, not {came_from}")
    return _refreshed(session, number)


def _refreshed(session: Session, number: int) -> CurriculumWindow:
    row = _get(session, number)
    session.refresh(row)
    return row


def _as_grant(row: CurriculumWindow, name: str, *, by: str) -> ExceptionGrant:
    try:
        return ExceptionGrant(id=name, starts=row.starts, expires=row.ends, reason=f"Curriculum window: {row.purpose}",
                              approved_by=by, **scope_of(row))  # type: ignore[arg-type]  # fmt: skip
    except ValidationError as exc:
        raise WindowRefused("; ".join(error["msg"] for error in exc.errors())) from None


def _check(compiled: CompiledPolicy, grant: ExceptionGrant) -> None:
    _, problems = compile_store_grants(compiled, [grant])
    if problems:
        raise WindowRefused("; ".join(problem.split(": ", 1)[-1] for problem in problems))
