"""Test-only mitmproxy script: log one line once mitmdump has fully started.

:class:`tests.support.mitmdump.Mitmdump` loads it last and waits for :data:`READY_LINE`.

mitmdump brings up its listeners, then runs every addon's ``running`` hook in load order (so the
gateway's come before this one's), then checks once more whether an error was logged during
startup and exits if so. The "listening at" line therefore comes too early to mean "ready": an
addon may still fail in ``running``. This script's ``running`` hook starts a task that waits until
mitmproxy's startup error check has finished (its log handler is removed then) and only then logs
the line, so the line means: all addons loaded, configured and running, and mitmdump stays up.
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import ctx
from mitmproxy.utils import asyncio_utils

READY_LINE = "test harness: mitmdump ready"

logger = logging.getLogger(__name__)


class ReadySignal:
    def running(self) -> None:
        asyncio_utils.create_task(self._announce(), name="test harness ready signal", keep_ref=True)

    async def _announce(self) -> None:
        check = ctx.master.addons.get("errorcheck")
        handler = getattr(check, "logger", None)
        while handler is not None and handler in logging.getLogger().handlers:
            await asyncio.sleep(0.01)
        logger.warning(READY_LINE)


addons = [ReadySignal()]
