"""The school calendar of the demo policy: lesson boundaries, clock changes, half terms, closures, weekends."""

from datetime import datetime

import pytest

from gateway.decisions.types import PeriodKind as K
from gateway.policy.compiled import CompiledPolicy


def period(policy: CompiledPolicy, at: str) -> K:
    return policy.calendar.period(datetime.fromisoformat(at))


@pytest.mark.parametrize(
    ("at", "kind"),
    [
        ("2026-09-07T08:49", K.BEFORE_SCHOOL),
        ("2026-09-07T08:50", K.LESSON),
        ("2026-09-07T10:29:59", K.LESSON),
        ("2026-09-07T10:30", K.BREAK),
        ("2026-09-07T10:45", K.LESSON),
        ("2026-09-07T12:00", K.LUNCH),
        ("2026-09-07T13:00", K.LESSON),
        ("2026-09-07T15:14", K.LESSON),
        ("2026-09-07T15:15", K.AFTER_SCHOOL),
        ("2026-09-07T23:59", K.AFTER_SCHOOL),
        ("2026-09-07T00:00", K.BEFORE_SCHOOL),
    ],
)
def test_school_day_boundaries_in_local_time(demo_policy, at, kind):
    assert period(demo_policy, at) is kind


@pytest.mark.parametrize(
    ("at", "kind"),
    [
        # Friday before the autumn change: BST, so 08:50 local is 07:50 UTC.
        ("2026-10-23T07:49Z", K.BEFORE_SCHOOL),
        ("2026-10-23T07:50Z", K.LESSON),
        # The change itself (Sunday 25 October 2026, 02:00 BST -> 01:00 GMT) is a weekend, either side of it.
        ("2026-10-25T00:59Z", K.WEEKEND),
        ("2026-10-25T01:00Z", K.WEEKEND),
        # First school day after half term: GMT, so 08:50 local is 08:50 UTC.
        ("2026-11-02T07:50Z", K.BEFORE_SCHOOL),
        ("2026-11-02T08:49Z", K.BEFORE_SCHOOL),
        ("2026-11-02T08:50Z", K.LESSON),
        ("2026-11-02T15:15Z", K.AFTER_SCHOOL),
        # Spring change: Sunday 28 March 2027, 01:00 GMT -> 02:00 BST.
        ("2027-03-25T08:49Z", K.BEFORE_SCHOOL),
        ("2027-03-25T08:50Z", K.LESSON),
        ("2027-03-28T00:59Z", K.WEEKEND),
        ("2027-03-28T01:00Z", K.WEEKEND),
        # Tuesday 30 March 2027 (Monday is Easter Monday): BST again.
        ("2027-03-30T07:49Z", K.BEFORE_SCHOOL),
        ("2027-03-30T07:50Z", K.LESSON),
        ("2027-03-30T14:15Z", K.AFTER_SCHOOL),
        ("2027-03-30T08:50+01:00", K.LESSON),
    ],
)
def test_clock_changes(demo_policy, at, kind):
    assert period(demo_policy, at) is kind


@pytest.mark.parametrize(
    ("at", "kind"),
    [
        ("2026-10-28T10:00", K.HOLIDAY),  # autumn half term
        ("2027-02-17T10:00", K.HOLIDAY),  # spring half term
        ("2027-06-02T10:00", K.HOLIDAY),  # summer half term
        ("2026-12-22T10:00", K.HOLIDAY),  # Christmas holidays
        ("2026-09-02T10:00", K.HOLIDAY),  # day before term starts
        ("2026-09-03T10:00", K.LESSON),  # first day of term
        ("2026-12-18T10:00", K.LESSON),  # last day of term
        ("2027-01-04T10:00", K.CLOSURE),  # INSET day
        ("2027-01-05T10:00", K.LESSON),
        ("2027-03-26T10:00", K.CLOSURE),  # Good Friday
        ("2027-05-03T10:00", K.CLOSURE),  # Early May bank holiday
        ("2026-09-12T10:00", K.WEEKEND),
        ("2026-09-13T10:00", K.WEEKEND),
        ("2027-07-22T10:00", K.HOLIDAY),  # summer holidays
    ],
)
def test_calendar_days(demo_policy, at, kind):
    assert period(demo_policy, at) is kind
