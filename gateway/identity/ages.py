"""A pupil's age, from the date of birth or, failing that, from the English year group."""

from __future__ import annotations

from datetime import date

from gateway.identity.types import Identity


def age_on(date_of_birth: date, day: date) -> int:
    years = day.year - date_of_birth.year
    if (day.month, day.day) < (date_of_birth.month, date_of_birth.day):
        years -= 1
    return years


def youngest_age_in_year_group(year_group: int) -> int:
    """The youngest a pupil in `year_group` can be: in England a pupil in Year N turns N+5 during the school
    year that starts on 1 September, so the youngest (an August birthday) is N+4 until the year's last day."""
    return year_group + 4


def age_of(identity: Identity, day: date) -> int | None:
    """The person's age on `day`; from the year group (the youngest possible, so never overstated) when the date
    of birth is unknown; None for an unknown client or adult staff without either."""
    if identity.date_of_birth is not None:
        return age_on(identity.date_of_birth, day)
    if identity.year_group is not None:
        return youngest_age_in_year_group(identity.year_group)
    return None
