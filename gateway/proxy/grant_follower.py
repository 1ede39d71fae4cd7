"""Follows the grants in the store, so an unblock or permission approved anywhere is live in every proxy within
seconds, and ends with no restart.

A background task polls one counter row (`store_version`) off the event loop every `gateway_grants_interval_ms`;
only when it moves are the grants read again. The grants are compiled against the running policy, again whenever
the policy is swapped (checked on every decision, so no decision ever pairs a grant with another policy's list
bits). Expiry needs no change in the store: a grant stops applying at its end, checked at every decision. While the
database is away, the grants last read stay in force until they expire.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from mitmproxy import ctx
from sqlalchemy.orm import Session

from gateway.policy.compiled import CompiledPolicy
from gateway.policy.exceptions import EMPTY, ExceptionSet
from gateway.policy.model import ExceptionGrant
from gateway.policy.store_grants import compile_store_grants
from gateway.proxy.policy_source import PolicySource
from gateway.store.engine import StallGuard, make_engine
from gateway.store.grants import grants_in_force, version

log = logging.getLogger(__name__)

STATEMENT_TIMEOUT = 5.0
STALL_SECONDS = 10.0


class GrantFollower:
    def __init__(self, policy: PolicySource) -> None:
        self.policy = policy
        self._grants: tuple[ExceptionGrant, ...] = ()
        self._set: ExceptionSet = EMPTY
        self._compiled_for: CompiledPolicy | None = None
        self._version: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._away = False

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("gateway_grants_interval_ms", int, 1000,
                          "Milliseconds between checks of the store for new, changed or ended grants.")  # fmt: skip

    def running(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._follow())

    def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def exceptions_for(self, compiled: CompiledPolicy) -> ExceptionSet:
        """The grants in force, compiled against `compiled` (the policy the caller is deciding with)."""
        if compiled is not self._compiled_for:
            self._compile(compiled)
        return self._set

    def _compile(self, compiled: CompiledPolicy) -> None:
        self._set, problems = compile_store_grants(compiled, self._grants)
        self._compiled_for = compiled
        for problem in problems:
            log.warning("grant left out: %s", problem)

    async def _follow(self) -> None:
        engine = make_engine(ctx.options.gateway_db, statement_timeout=STATEMENT_TIMEOUT)
        guard = StallGuard(engine, STALL_SECONDS)
        try:
            while True:
                await self._poll(engine, guard)
                await asyncio.sleep(max(ctx.options.gateway_grants_interval_ms, 50) / 1000)
        finally:
            guard.close()
            engine.dispose()

    async def _poll(self, engine, guard: StallGuard) -> None:  # type: ignore[no-untyped-def]
        try:
            read = await asyncio.to_thread(self._read, engine, guard, self._version)
        except Exception as exc:  # the database is away: keep what was read last
            if not self._away:
                log.warning("grants: the store does not answer; the grants read last stay in force: %s",
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)  # fmt: skip
            self._away = True
            return
        if self._away:
            log.info("grants: the store answers again")
            self._away = False
        if read is None:
            return
        self._version, grants, problems = read
        for problem in problems:
            log.warning("grant left out: %s", problem)
        self._grants = tuple(stored.grant for stored in grants)
        self._compile(self.policy.current)
        log.info("grants: %d in force (store version %d)", len(self._set.grants), self._version)

    @staticmethod
    def _read(engine, guard: StallGuard, seen: int | None):  # type: ignore[no-untyped-def]
        """In a thread: None when the counter has not moved, else (counter, grants in force, problems)."""
        with guard, Session(engine) as session:
            current = version(session)
            if current == seen:
                return None
            grants, problems = grants_in_force(session, datetime.now(UTC))
            return current, grants, problems
