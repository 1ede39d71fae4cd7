"""What kind of time an instant is at school: lesson, break, lunch, before/after school, weekend, holiday, closure."""

from __future__ import annotations

from bisect import bisect_right
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from gateway.decisions.types import PeriodKind
from gateway.policy.model import Timetable, Weekday


class SchoolCalendar:
    def __init__(self, timetable: Timetable, zone: ZoneInfo) -> None:
        self.zone = zone
        self._terms = timetable.terms
        self._closures = {c.date: c.reason for c in timetable.closures}
        # Per weekday: sorted period start minutes and, in step, (end minute, kind).
        self._days: dict[int, tuple[list[int], list[tuple[int, PeriodKind]]]] = {}
        for day, periods in timetable.weekly.items():
            ordered = sorted(periods, key=lambda p: p.start_minute)
            self._days[Weekday(day).index] = (
                [p.start_minute for p in ordered],
                [(p.end_minute, p.kind) for p in ordered],
            )
        self.period_at_local = lru_cache(maxsize=8192)(self._period_at_local)

    def local(self, instant: datetime) -> datetime:
        """School-local wall time; a naive instant is taken to be school-local already."""
        if instant.tzinfo is None:
            return instant.replace(tzinfo=self.zone)
        return instant.astimezone(self.zone)

    def period(self, instant: datetime) -> PeriodKind:
        local = self.local(instant)
        return self.period_at_local(local.date(), local.hour * 60 + local.minute)

    def day_kind(self, day: date) -> PeriodKind | None:
        """The kind of a whole day that has no lessons, or None for a school day."""
        if day.weekday() >= 5:
            return PeriodKind.WEEKEND
        if day in self._closures:
            return PeriodKind.CLOSURE
        term = next((t for t in self._terms if day in t), None)
        if term is None or any(day in half for half in term.half_terms):
            return PeriodKind.HOLIDAY
        if day.weekday() not in self._days:
            return PeriodKind.CLOSURE
        return None

    def _period_at_local(self, day: date, minute: int) -> PeriodKind:
        whole_day = self.day_kind(day)
        if whole_day is not None:
            return whole_day
        starts, ends = self._days[day.weekday()]
        i = bisect_right(starts, minute) - 1
        if i < 0:
            return PeriodKind.BEFORE_SCHOOL
        end, kind = ends[i]
        if minute < end:
            return kind
        # Uncovered time after the last period is after school; a gap between periods counts as break.
        return PeriodKind.AFTER_SCHOOL if i == len(starts) - 1 else PeriodKind.BREAK
