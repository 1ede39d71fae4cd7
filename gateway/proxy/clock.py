"""The gateway's clock, which tests and the officer's rehearsals ("what would the filter do at 10:00 on Tuesday?")
can set to a chosen instant: fixed at start-up (`gateway_now`), or followed at run time from a file
(`gateway_clock_file`) that anyone with write access on the gateway host can change, with no restart.

The file holds one ISO 8601 instant (naive = school-local time). While it is missing or empty, the clock is
`gateway_now` if given, else the real time. A file that does not read as an instant is logged once and the last
good value stays: the clock only chooses which of the policy's own rules apply (lesson, lunch, a grant's start
and end), so holding a good instant is no less safe than jumping to another one, and a half-written file never
makes the filter flicker between periods. Setting it needs the same access as editing the policy.

`now()` is an attribute read on the hot path. A background task reads the file in a worker thread every 0.2 s:
it is a few bytes, so reading it costs no more than comparing its modification time would, and a rewrite within
one tick of the file system's timestamps is never missed.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

from mitmproxy import ctx, exceptions

log = logging.getLogger(__name__)

# Often enough that a rehearsal or a test moving the clock sees it take effect at once.
FOLLOW_SECONDS = 0.2
# An ISO 8601 instant is a few dozen bytes; anything longer is not one, and is not read whole.
MAX_FILE_BYTES = 256
# Years the calendar can convert between zones with a day to spare either side.
YEARS = range(2, 9999)


class NotAnInstant(ValueError):
    pass


def parse_instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise NotAnInstant(f"not an ISO 8601 instant: {text[:80]!r}") from None
    if moment.year not in YEARS:
        raise NotAnInstant(f"out of the clock's range: {text[:80]!r}")
    return moment


def _read(path: Path) -> str:
    """The file's text, stripped; empty when the file is missing; a note that reads as no instant when it cannot
    be read (a directory, no permission)."""
    try:
        with path.open("rb") as file:
            return file.read(MAX_FILE_BYTES + 1).decode("utf-8", errors="replace").strip()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        return f"<unreadable: {exc.strerror or type(exc).__name__}>"


class Clock:
    def __init__(self) -> None:
        self._pinned: datetime | None = None
        self._followed: datetime | None = None
        self._path: Path | None = None
        self._text: str | None = None
        self._task: asyncio.Task[None] | None = None

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option(
            "gateway_now",
            str,
            "",
            "Pin the gateway's clock to an ISO 8601 instant (naive = school-local time). Empty: the real clock.",
        )
        loader.add_option(
            "gateway_clock_file",
            str,
            "",
            "A file holding an ISO 8601 instant (naive = school-local time) the gateway's clock follows while it "
            "runs, re-read every 0.2 s; missing or empty: gateway_now or the real clock; unreadable: the last good "
            "instant stays.",
        )

    def configure(self, updated: set[str]) -> None:
        if "gateway_now" in updated:
            value = ctx.options.gateway_now
            try:
                self._pinned = parse_instant(value) if value else None
            except NotAnInstant as exc:
                raise exceptions.OptionsError(f"gateway_now: {exc}") from None
        if "gateway_clock_file" in updated:
            value = ctx.options.gateway_clock_file
            self._path = Path(value) if value else None
            self._followed, self._text = None, None
            if self._path is not None:
                # Once, before any traffic, so the first decision already uses the file.
                self._take(_read(self._path))

    def running(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._follow())

    def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def now(self) -> datetime:
        """The file's instant, else the pinned one (either possibly naive, meaning school-local), else the real
        time in UTC."""
        return self._followed or self._pinned or datetime.now(UTC)

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(FOLLOW_SECONDS)
            path = self._path
            if path is None:
                continue
            text = await asyncio.to_thread(_read, path)
            if path is self._path:  # not reconfigured while reading
                self._take(text)

    def _take(self, text: str) -> None:
        """Follow the file's new text; the same text again changes nothing and logs nothing."""
        if text == self._text:
            return
        self._text = text
        if not text:
            self._followed = None
            log.info("clock: %s is empty or missing; the clock is %s", self._path, self._describe())
            return
        try:
            self._followed = parse_instant(text)
        except NotAnInstant as exc:
            log.warning("clock: %s: %s; the clock stays %s", self._path, exc, self._describe())
            return
        log.info("clock: following %s: %s", self._path, self._followed.isoformat())

    def _describe(self) -> str:
        if self._followed is not None:
            return f"at {self._followed.isoformat()}"
        if self._pinned is not None:
            return f"pinned at {self._pinned.isoformat()} (gateway_now)"
        return "the real time"
