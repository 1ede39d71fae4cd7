"""Reading the console's query parameters: a value out of range is a 400 naming the parameter, never a 500."""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo

MAX_PAGE = 100_000
# Dates the store and the clock can hold with a day to spare either side, whatever the offset given.
EARLIEST, LATEST = date(1900, 1, 1), date(9998, 12, 31)


class BadParameter(ValueError):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


def page_number(raw: str | None, name: str = "page") -> int:
    text = (raw or "").strip()
    if not text:
        return 1
    if not text.isascii() or not text.isdigit() or len(text) > 6 or not 1 <= int(text) <= MAX_PAGE:
        raise BadParameter(name, f"a page number from 1 to {MAX_PAGE}, not {text[:40]!r}")
    return int(text)


def local_datetime(raw: str, zone: tzinfo, name: str) -> datetime | None:
    """An ISO 8601 date-time, school-local unless it carries an offset; None when empty."""
    text = raw.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadParameter(name, f"a date and time like 2026-03-02T09:00, not {text[:40]!r}") from None
    value = value.replace(tzinfo=zone) if value.tzinfo is None else value
    try:
        in_range = EARLIEST <= value.astimezone(UTC).date() <= LATEST
    except OverflowError:
        in_range = False
    if not in_range:
        raise BadParameter(name, f"a date from {EARLIEST} to {LATEST}, not {text[:40]!r}")
    return value


def day(raw: str | None, today: date, name: str = "day") -> date:
    text = (raw or "").strip()
    if not text:
        return today
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise BadParameter(name, f"a date like 2026-03-02, not {text[:40]!r}") from None
    if not EARLIEST <= value <= LATEST:
        raise BadParameter(name, f"a date from {EARLIEST} to {LATEST}, not {text[:40]!r}")
    return value


def one_of(raw: str | None, choices: tuple[str, ...] | list[str], default: str, name: str) -> str:
    text = (raw or "").strip()
    if not text:
        return default
    if text not in choices:
        raise BadParameter(name, f"one of {', '.join(c for c in choices if c)}, not {text[:40]!r}")
    return text


