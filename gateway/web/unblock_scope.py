"""What an unblock request means against the running policy: whether it may be asked at all, and the grant an
approval makes (which hosts, for whom, until when).

A grant names hosts, never paths, so "this page" lifts the page's own host name and "the whole site" the site's
domain without its leading "www.".
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from flask import current_app

from gateway.decisions.types import PeriodKind
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.loader import PolicyError
from gateway.policy.model import ExceptionGrant
from gateway.policy.store_grants import compile_store_grants
from gateway.store.models.unblock_requests import UnblockRequest
from gateway.store.request_outcomes import requested_site
from gateway.web.console_policy import console_policy

# "Permanently" still needs an end: far enough that only the headteacher's "end early" ends it.
PERMANENT_UNTIL = datetime(2100, 1, 1, tzinfo=UTC)
# Looking for the next lesson's end gives up after this long (a holiday), granting to the end of the next day.
LESSON_SEARCH = timedelta(days=21)



class NoPolicy(Exception):
    """Requests cannot be checked: no policy was given, or it does not load."""


def running_policy() -> CompiledPolicy:
    """The console's policy, or NoPolicy saying why requests cannot be checked now."""
    try:
        compiled = console_policy()
    except (OSError, PolicyError) as exc:
        # The proxy keeps running its last good policy; requests wait until the file is fixed rather than be
        # checked against nothing.
        current_app.logger.exception("unblock: the policy does not load")
        raise NoPolicy(f"the policy file does not load ({str(exc).splitlines()[0]})") from None
    if compiled is None:
        raise NoPolicy("the console was started without --policy, so it cannot check unblock requests")
    return compiled


def hosts_for(extent: str, host: str) -> list[str]:
    return [requested_site(host, whole_site=extent == "site")]


def unliftable(compiled: CompiledPolicy, hosts: list[str]) -> bool:
    """True when no exception may lift these hosts (illegal content, or a list the policy marks unliftable)."""
    probe = ExceptionGrant(id="probe", domains=hosts, expires=PERMANENT_UNTIL, reason="probe")
    _, problems = compile_store_grants(compiled, [probe])
    return bool(problems)


def expires(duration: str, now: datetime, compiled: CompiledPolicy) -> datetime:
    calendar = compiled.calendar
    local = calendar.local(now)
    if duration == "lesson":
        return _lesson_end(compiled, now)
    if duration == "today":
        return _local_midnight(compiled, local.date() + timedelta(days=1))
    if duration == "week":
        return _local_midnight(compiled, local.date() + timedelta(days=7 - local.weekday()))
    if duration == "term":
        for term in sorted(compiled.policy.timetable.terms, key=lambda t: t.end):
            if term.end >= local.date():
                return _local_midnight(compiled, term.end + timedelta(days=1))
        return _local_midnight(compiled, local.date() + timedelta(days=1))
    if duration == "permanent":
        return PERMANENT_UNTIL
    raise ValueError(f"unknown duration {duration!r}")


def _local_midnight(compiled: CompiledPolicy, day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=compiled.calendar.zone).astimezone(UTC)


def _lesson_end(compiled: CompiledPolicy, now: datetime) -> datetime:
    """The end of the lesson in progress, or of the next one; a lesson never runs past the end of its day."""
    minute = calendar_minute(now)
    limit = minute + LESSON_SEARCH
    while compiled.calendar.period(minute) is not PeriodKind.LESSON:
        minute += timedelta(minutes=1)
        if minute > limit:
            return _local_midnight(compiled, compiled.calendar.local(now).date() + timedelta(days=2))
    day_end = _local_midnight(compiled, compiled.calendar.local(minute).date() + timedelta(days=1))
    while compiled.calendar.period(minute) is PeriodKind.LESSON and minute < day_end:
        minute += timedelta(minutes=1)
    return minute.astimezone(UTC)


def calendar_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def grant_for(request: UnblockRequest, *, audience: str, duration: str, extent: str, by: str, now: datetime,
              compiled: CompiledPolicy) -> ExceptionGrant:  # fmt: skip
    who: dict[str, object] = {}
    if audience == "me":
        if not request.username:
            raise ValueError("the requester is not in the roster: a grant for them alone cannot name them")
        who["users"] = [request.username]
    elif audience == "class":
        if not request.school_class:
            raise ValueError("the requester has no class in the roster")
        who["classes"] = [request.school_class]
    elif audience == "year":
        if request.year_group is None:
            raise ValueError("the requester has no year group in the roster")
        who["year_groups"] = [request.year_group]
    elif audience == "group":
        who["groups"] = [request.group_name]
    elif audience != "school":
        raise ValueError(f"unknown audience {audience!r}")
    return ExceptionGrant(id=f"unblock-request-{request.id}", domains=hosts_for(extent, request.host),
                          expires=expires(duration, now, compiled),
                          reason=f"Unblock request {request.id}: {request.why}",
                          approved_by=by, **who)  # type: ignore[arg-type]  # fmt: skip
