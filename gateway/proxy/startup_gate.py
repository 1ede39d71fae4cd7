"""Holds client connections until the gateway has finished starting, so an early client is neither fatal nor
let through unfiltered.

mitmdump opens its listeners before it runs the addons' `running` hooks, and some parts only finish starting
there: the gateway's identity sources load sessions and leases from a worker thread (the event loop accepts
clients meanwhile), and mitmproxy's TLS config makes its certificate store in its own `running` hook unless
`confdir` was set on the command line. A client in that window meets parts that are not ready; its first request
or TLS handshake raised an addon error there, and mitmdump exits on any error logged during start-up ("Errors
logged during startup, exiting"). After a reboot in a school day every device reconnects at once, so the window
is always hit.

The gate comes first among the script's addons, so its `client_connected` runs before any other gateway hook and
before a byte of the client's traffic is read. It holds each connection until start-up is over, then lets it
on. A connection still held after `gateway_startup_hold_ms` is closed unanswered: the client retries, and
nothing reaches a site unfiltered however long start-up takes.
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import connection, ctx, exceptions

log = logging.getLogger(__name__)

# How often the gate looks whether mitmproxy's start-up check has finished; start-up happens once.
STARTUP_POLL_S = 0.01


async def mitmproxy_started() -> None:
    """Return once mitmproxy's start-up is over: every addon's `running` hook has run and the start-up error check
    has passed (from then on an error is logged, not fatal).

    mitmproxy has no event for this. Its `errorcheck` addon (in mitmdump, mitmproxy and mitmweb) watches the log
    through a handler on the root logger and removes it when start-up is over; masters without the check have no
    such phase, and the gate opens at once.
    """
    check = ctx.master.addons.get("errorcheck")
    handler = getattr(check, "logger", None)
    root = logging.getLogger()
    while handler is not None and handler in root.handlers:
        await asyncio.sleep(STARTUP_POLL_S)


class StartupGate:
    def __init__(self) -> None:
        self._started = asyncio.Event()
        self._held = 0
        self._refused = 0
        self._opener: asyncio.Task[None] | None = None

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option(
            "gateway_startup_hold_ms",
            int,
            30000,
            "Milliseconds a client connecting while the gateway starts is held before it is closed unanswered.",
        )

    def configure(self, updated: set[str]) -> None:
        if "gateway_startup_hold_ms" in updated and ctx.options.gateway_startup_hold_ms < 0:
            raise exceptions.OptionsError(
                f"gateway_startup_hold_ms must be 0 or more, not {ctx.options.gateway_startup_hold_ms}"
            )

    def running(self) -> None:
        if self._opener is None:
            self._opener = asyncio.get_running_loop().create_task(self._open_when_started())

    async def _open_when_started(self) -> None:
        await mitmproxy_started()
        self._started.set()
        # From now on mitmproxy skips this hook: no coroutine per connection once the gateway is up.
        self.client_connected = None  # type: ignore[assignment]
        log.info(
            "gateway ready: %d connections held during start-up go on, %d were closed unanswered",
            self._held, self._refused,
        )  # fmt: skip

    async def client_connected(self, client: connection.Client) -> None:
        self._held += 1
        try:
            await asyncio.wait_for(self._started.wait(), ctx.options.gateway_startup_hold_ms / 1000)
        except TimeoutError:
            self._held -= 1
            self._refused += 1
            # A warning: an error logged during start-up would make mitmdump exit.
            log.warning(
                "closed %s unanswered: the gateway was still starting after %d ms",
                client.peername[0], ctx.options.gateway_startup_hold_ms,
            )  # fmt: skip
            client.error = "the gateway is still starting"
