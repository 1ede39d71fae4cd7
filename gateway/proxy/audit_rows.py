"""The proxy's own rows in the audit trail (policy reloads installed or refused, proxy sign-in failures): written to
the on-disk audit outbox from a worker thread, then delivered to the database in the background and tried again
every few seconds while it is away, so neither a slow disk nor a database outage ever holds up the event loop.

Reads gateway_db, gateway_spool and gateway_site (declared by `gateway.proxy.store_options.StoreOptions`); without
them (a proxy with no store) nothing is recorded. Each row names the gateway as its actor (`gateway:<site>`) and
carries the school's site, so a trust's console shows it to that school's staff.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

from mitmproxy import ctx

from gateway.store.audit import audit_values
from gateway.store.audit_outbox import AuditOutbox

log = logging.getLogger(__name__)

# Seconds between tries to deliver audit rows the database could not take.
AUDIT_RETRY_INTERVAL = 5.0


class AuditRows:
    def __init__(self) -> None:
        self._where: tuple[str, Path] | None = None
        self._site = ""
        self._outbox: AuditOutbox | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._retrier: asyncio.Task[None] | None = None

    def configure(self, updated: set[str]) -> None:
        if "gateway_db" not in ctx.options:
            return
        if {"gateway_db", "gateway_spool"} & updated:
            self._where = (ctx.options.gateway_db, Path(ctx.options.gateway_spool) / "audit")
            self._outbox = None
        if "gateway_site" in updated:
            self._site = ctx.options.gateway_site

    def running(self) -> None:
        if self._where is not None and self._retrier is None:
            self._retrier = asyncio.get_running_loop().create_task(self._retry())

    def done(self) -> None:
        if self._retrier is not None:
            self._retrier.cancel()

    @property
    def on(self) -> bool:
        return self._where is not None

    def row(self, action: str, *, policy_site: str, **values: Any) -> dict[str, Any]:
        """One row by this gateway, for the site `gateway_site` names (else the policy's `school.site`)."""
        site = self._site or policy_site
        return audit_values(f"gateway:{site or socket.gethostname()}", action, site=site or None, **values)

    def keep(self, rows: list[dict[str, Any]]) -> None:
        """In a worker thread: the rows on disk, for `deliver` to send. OSError if the outbox cannot be written."""
        outbox = self._open()
        if outbox is not None:
            outbox.keep_all(rows)

    def deliver(self) -> None:
        """Deliver what the outbox holds in the background: a slow database delays the rows, nothing else."""
        if self._outbox is None or (self._flushing is not None and not self._flushing.done()):
            return
        self._flushing = asyncio.get_running_loop().create_task(self._flush(self._outbox))

    async def delivered(self) -> None:
        """Deliver what the outbox holds now, and wait for it (the proxy is stopping); left on disk if it cannot."""
        if self._outbox is not None:
            await self._flush(self._outbox)

    def _open(self) -> AuditOutbox | None:
        if self._outbox is None and self._where is not None:
            self._outbox = AuditOutbox(*self._where)
        return self._outbox

    async def _retry(self) -> None:
        try:
            # Rows a previous run could not deliver go first.
            await asyncio.to_thread(self._open)
        except OSError as exc:
            log.warning("no audit outbox at %s: %s", self._where[1] if self._where else "", exc)
        while True:
            if self._outbox is not None and self._outbox.waiting:
                self.deliver()
            await asyncio.sleep(AUDIT_RETRY_INTERVAL)

    @staticmethod
    async def _flush(outbox: AuditOutbox) -> None:
        try:
            await asyncio.to_thread(outbox.flush)
        except Exception:  # the rows stay on disk for the next try
            log.exception("audit outbox")
