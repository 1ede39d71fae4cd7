"""Follows the grants in the store, so an unblock or permission approved anywhere is live in every proxy within
seconds, and ends with no restart; and the recent unblock requests, so the block page tells a requester where
their request stands; and the school's local blocks (one-click blocks from reports), laid over the running policy.

A background task polls four counter rows (`store_version`: grants, requests, local_blocks, bans) in one query off
the event loop every `gateway_grants_interval_ms`; only what moved is read again (the requests whichever moved: a
request's outcome names its grant's end). The grants are compiled against the running policy, again whenever the
policy source installs a policy (it hands each one over before anything is decided with it, so no decision ever
pairs a grant with another policy's list bits).
Expiry needs no change in the store: a grant stops applying at its end, checked at every decision. While the
database is away, the grants, requests and local blocks last read stay in force (the grants until they expire).

The supervised-only bans go to the `BanKeeper` (`gateway.proxy.bans`), and ride to the engine on the grants'
`ExceptionSet`, so every decision that sees the grants sees them; the ones read last stay while the store is away.

The local blocks become entries of the policy's `reports.block_list` list: the follower installs the running
policy with them laid over (`gateway.policy.local_blocks`) as `PolicySource.current`, so the request decision and
the CONNECT/TLS checks see them alike; a policy swapped in from the file is overlaid as it is installed.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from mitmproxy import ctx
from sqlalchemy.orm import Session

from gateway.identity.types import Identity
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.exceptions import EMPTY, ExceptionSet
from gateway.policy.local_blocks import LocalEntry, with_local_blocks
from gateway.policy.model import ExceptionGrant
from gateway.policy.store_grants import compile_store_grants
from gateway.proxy.bans import BanKeeper
from gateway.proxy.earlier_requests import EarlierRequests
from gateway.proxy.policy_source import PolicySource
from gateway.store.bans import BANS, bans_in_force
from gateway.store.engine import StallGuard, make_engine
from gateway.store.grants import grants_in_force
from gateway.store.local_blocks import LOCAL_BLOCKS, entries_in_force
from gateway.store.request_outcomes import RequestOutcome, recent_outcomes
from gateway.store.versions import GRANTS, REQUESTS, versions

log = logging.getLogger(__name__)

STATEMENT_TIMEOUT = 5.0
STALL_SECONDS = 10.0
# The block page speaks of requests asked in the last month; past the bound (a flood from many devices) the oldest
# drop off the block page, and memory stays bounded.
REQUESTS_KEPT_FOR = timedelta(days=30)
MAX_REQUESTS_KEPT = 20_000
COUNTERS = (GRANTS, REQUESTS, LOCAL_BLOCKS, BANS)


class GrantFollower:
    def __init__(self, policy: PolicySource, bans: BanKeeper | None = None) -> None:
        self.policy = policy
        self.bans = bans
        self._grants: tuple[ExceptionGrant, ...] = ()
        self._set: ExceptionSet = EMPTY
        self._blocks: tuple[LocalEntry, ...] = ()
        # The policy from the file the grants are compiled against, and that policy with the local blocks over it
        # (what `policy.current` holds once adopted; both have the same list bits).
        self._base: CompiledPolicy | None = None
        self._overlaid: CompiledPolicy | None = None
        self._versions: dict[str, int] = {}
        self._site: str | None = None
        self._requests = EarlierRequests()
        self._task: asyncio.Task[None] | None = None
        self._away = False
        policy.on_install(self._adopt)
        if bans is not None:
            bans.on_change(self._attach_bans)

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("gateway_grants_interval_ms", int, 1000,
                          "Milliseconds between checks of the store for changed grants and requests.")  # fmt: skip

    def running(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._follow())

    def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def exceptions_for(self, compiled: CompiledPolicy) -> ExceptionSet:
        """The grants in force, compiled against the running policy (the one the caller is deciding with: the
        policy source hands every policy it installs to `_adopt` before anyone decides with it)."""
        return self._set

    def earlier_request(self, identity: Identity, host: str) -> RequestOutcome | None:
        """The newest request this person (or, for nobody signed in, this device) made about `host`."""
        return self._requests.latest(identity, host)

    def _adopt(self, compiled: CompiledPolicy) -> None:
        """A policy swapped in from the file: compile the grants against it and lay the local blocks over it."""
        self._base = compiled
        self._compile()
        self._overlay()

    def _compile(self) -> None:
        assert self._base is not None
        self._set, problems = compile_store_grants(self._base, self._grants)
        self._attach_bans()
        for problem in problems:
            log.warning("grant left out: %s", problem)

    def _attach_bans(self) -> None:
        if self.bans is not None:
            self._set = ExceptionSet(self._set.grants, self.bans.current)

    def _overlay(self) -> None:
        assert self._base is not None
        self._overlaid = with_local_blocks(self._base, self._blocks)
        # One reference assignment, as a reload makes: a request in flight keeps the policy it started with.
        self.policy.current = self._overlaid

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
            # A trust's gateways share one store: each follows its own school's records, all read again when
            # a reload names another school.
            site = self.policy.current.policy.school.site
            if site != self._site:
                self._site, self._versions = site, {}
            read = await asyncio.to_thread(self._read, engine, guard, self._versions, site)
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
            self._drop_expired(datetime.now(UTC))
            return
        self._versions, grants, outcomes, blocks, bans = read
        self._requests = EarlierRequests(outcomes)
        log.info("requests: %d recent (store version %d)", len(self._requests), self._versions[REQUESTS])
        if grants is not None:
            stored, problems = grants
            for problem in problems:
                log.warning("grant left out: %s", problem)
            self._grants = tuple(grant.grant for grant in stored)
            self._compile()
            log.info("grants: %d in force (store version %d)", len(self._set.grants), self._versions[GRANTS])
        if bans is not None and self.bans is not None:
            self.bans.take(bans)
            log.info("bans: %d in force, %d of them supervised now (store version %d)", len(bans),
                     sum(1 for ban in bans if ban.supervised_until is not None), self._versions[BANS])  # fmt: skip
        if blocks is not None:
            self._blocks = blocks
            self._overlay()
            listed = self.policy.current.policy.reports.block_list
            log.info("local blocks: %d in force, on the list %s (store version %d)", len(blocks),
                     listed or "(none: reports.block_list is not set, so they are not applied)",
                     self._versions[LOCAL_BLOCKS])  # fmt: skip

    def _drop_expired(self, now: datetime) -> None:
        """Forget grants past their end in real time: a clock moved back for a rehearsal must not bring back a
        grant that has ended (an expiry moves no counter, so nothing else would drop it)."""
        kept = tuple(grant for grant in self._grants if grant.expires > now)
        if len(kept) != len(self._grants):
            self._grants = kept
            self._compile()

    @staticmethod
    def _read(engine, guard: StallGuard, seen: dict[str, int], site: str):  # type: ignore[no-untyped-def]
        """In a thread: None when no counter moved, else (counters, grants or None when they did not move, recent
        requests, local blocks or None when they did not move, bans or None when they did not move). The requests
        are read whichever moved: each names its grant's end, and whether it was ended."""
        with guard, Session(engine) as session:
            current = versions(session, COUNTERS)
            if current == seen:
                return None
            now = datetime.now(UTC)
            outcomes = recent_outcomes(session, now - REQUESTS_KEPT_FOR, MAX_REQUESTS_KEPT, site)
            grants = grants_in_force(session, now, site) if current[GRANTS] != seen.get(GRANTS) else None
            blocks = entries_in_force(session, site) if current[LOCAL_BLOCKS] != seen.get(LOCAL_BLOCKS) else None
            bans = bans_in_force(session, now) if current[BANS] != seen.get(BANS) else None
            return current, grants, outcomes, blocks, bans
