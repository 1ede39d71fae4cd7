"""The gateway's clock, which tests and the officer's rehearsals can pin to a chosen instant."""

from __future__ import annotations

from datetime import UTC, datetime

from mitmproxy import ctx, exceptions


class Clock:
    def __init__(self) -> None:
        self._pinned: datetime | None = None

    def load(self, loader) -> None:
        loader.add_option(
            "gateway_now",
            str,
            "",
            "Pin the gateway's clock to an ISO 8601 instant (naive = school-local time). Empty: the real clock.",
        )

    def configure(self, updated: set[str]) -> None:
        if "gateway_now" in updated:
            value = ctx.options.gateway_now
            try:
                self._pinned = datetime.fromisoformat(value) if value else None
            except ValueError:
                raise exceptions.OptionsError(f"gateway_now: not an ISO 8601 instant: {value!r}") from None

    def now(self) -> datetime:
        """The pinned instant (possibly naive, meaning school-local) or the real time in UTC."""
        return self._pinned or datetime.now(UTC)
