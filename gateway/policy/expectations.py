"""Runs the expected decisions a policy carries (`expect:`) against the compiled policy. Pure: the engine only.

A case that fails becomes a `Problem` at its line in the policy file, saying what was expected, what the policy
decides instead and why (the rule, list and entry, or the default), so the school sees which change broke it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta

from gateway.decisions.engine import InvalidTarget, decide_target
from gateway.decisions.types import Decision, PeriodKind, Source
from gateway.identity.types import Identity, IdentitySource
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.expectations_model import ExpectedDecision
from gateway.policy.loader import PolicyError, Problem
from gateway.policy.model import SCHOOL_DAY_KINDS, Weekday

# How far past the first term's start a weekend, holiday or closure day is looked for.
SEARCH_DAYS = 400


def check_expectations(compiled: CompiledPolicy) -> None:
    """PolicyError naming every expected decision the policy breaks."""
    problems = list(expectation_problems(compiled))
    if problems:
        raise PolicyError(problems)


def expectation_problems(compiled: CompiledPolicy) -> Iterator[Problem]:
    loaded = compiled.loaded
    for i, case in enumerate(compiled.policy.expect):
        if case.group not in compiled.policy.groups:
            continue  # `references.py` reports the unknown group
        try:
            instant = instant_for(compiled, case.at)
        except LookupError as exc:
            yield loaded.problem(("expect", i, "at"), str(exc))
            continue
        identity = Identity(group=case.group, source=IdentitySource.GIVEN, username=case.user,
                            year_group=case.year_group)  # fmt: skip
        try:
            decision = decide_target(compiled, identity, case.url, instant)
        except InvalidTarget as exc:
            yield loaded.problem(("expect", i, "url"), str(exc))
            continue
        if decision.action is not case.action:
            yield loaded.problem(("expect", i), broken(case, instant, decision))


def broken(case: ExpectedDecision, instant: datetime, decision: Decision) -> str:
    who = case.group + (f" (year {case.year_group})" if case.year_group is not None else "")
    who += f", user {case.user}" if case.user else ""
    when = f"{instant:%a %Y-%m-%d %H:%M} ({decision.period.value})"
    message = (
        f"expected {case.action.value} for {who} at {when} on {case.url}, "
        f"but the policy decides {decision.action.value}: {because(decision)}"
    )
    return message + (f" [case: {case.why}]" if case.why else "")


def because(decision: Decision) -> str:
    """Where in the precedence the decision came from, naming the rule or exception, list and entry."""
    if decision.source is Source.DEFAULT:
        return "the policy's default"
    label = {Source.RULE: "rule", Source.EXCEPTION: "exception", Source.ILLEGAL: "the illegal-content slot"}
    parts = [label.get(decision.source, decision.source.value)]
    if decision.rule:
        parts[0] += f" {decision.rule!r}"
    if decision.list:
        parts.append(f"list {decision.list!r}" + (f" (entry {decision.matched!r})" if decision.matched else ""))
    return ", ".join(parts)


def instant_for(compiled: CompiledPolicy, at: datetime | PeriodKind) -> datetime:
    """The school-local instant a case is decided at; a period kind stands for its first occurrence (see the
    model)."""
    if isinstance(at, datetime):
        return compiled.calendar.local(at)
    zone = compiled.zone
    first_term = min(compiled.policy.timetable.terms, key=lambda t: t.start)
    if at in SCHOOL_DAY_KINDS:
        monday = first_term.start + timedelta(days=-first_term.start.weekday() % 7)
        minute = _middle_of(compiled, at)
        for day in _days_from(monday, step=7):
            if day > first_term.end:
                break
            if compiled.calendar.day_kind(day) is None:
                return datetime.combine(day, time(minute // 60, minute % 60), zone)
        raise LookupError(f"the first term has no school Monday for a {at.value} case")
    for day in _days_from(first_term.start, step=1):
        if compiled.calendar.day_kind(day) is at:
            return datetime.combine(day, time(12, 0), zone)
    raise LookupError(f"no {at.value} day within {SEARCH_DAYS} days of the first term's start")


def _middle_of(compiled: CompiledPolicy, kind: PeriodKind) -> int:
    """The minute in the middle of the first Monday period of that kind."""
    periods = compiled.policy.timetable.weekly.get(Weekday.MONDAY, [])
    for period in sorted(periods, key=lambda p: p.start_minute):
        if period.kind is kind:
            return (period.start_minute + period.end_minute) // 2
    raise LookupError(f"the timetable has no {kind.value} period on Mondays")


def _days_from(start: date, *, step: int) -> Iterator[date]:
    for n in range(0, SEARCH_DAYS, step):
        yield start + timedelta(days=n)
