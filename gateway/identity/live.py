"""Keeps a Resolver's in-memory state in step with the store and the DHCP lease file, off the event loop.

One daemon thread, every `interval` seconds (or at once when woken): reloads the roster and device register
when they changed, reloads the live identity sessions (so a portal sign-in written by the web app is seen
within a second), ends sessions that no longer hold (idle, lease moved, RADIUS gone quiet), records the MAC
behind new portal sessions, and every `flush_every` seconds writes the proxy's activity times back as
`last_seen_at` so idle timeouts survive a restart and `gateway whois` agrees with the proxy.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from gateway.identity.directory import directory_version, load_directory
from gateway.identity.leases import LeaseFollower
from gateway.identity.radius import AccountingEvent, usernames_for
from gateway.identity.resolver import BOUND_SOURCES, Resolver
from gateway.identity.sessions import end_sessions, live_bindings, start_session, touch_session
from gateway.identity.types import IdentitySource
from gateway.store.models.sessions import IdentitySession

log = logging.getLogger(__name__)


class LiveIdentity:
    def __init__(
        self,
        resolver: Resolver,
        sessions: sessionmaker[Session],
        leases: LeaseFollower | None = None,
        interval: float = 1.0,
        flush_every: float = 30.0,
        guard: AbstractContextManager[object] = nullcontext(),
    ) -> None:
        """`guard` is entered around each cycle's work with the store (a `StallGuard`, so a store that stops
        answering cannot freeze the bindings for good)."""
        self.resolver = resolver
        self.guard = guard
        self.sessions = sessions
        self.lease_follower = leases
        if leases is not None:
            resolver.leases = leases.lookup
        self.interval = interval
        self.flush_every = flush_every
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_flush = time.monotonic()
        self._flushed: dict[str, datetime] = {}
        self._lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        if self.lease_follower is not None:
            self.lease_follower.start()
        with self.guard:
            self.refresh()
        self._thread = threading.Thread(target=self._run, name="identity-live", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.lease_follower is not None:
            self.lease_follower.stop()
        try:
            with self.guard:
                self.flush_activity()
        except Exception:
            log.exception("identity: final activity flush failed")

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        away = False
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                with self.guard:
                    self.refresh()
                    if time.monotonic() - self._last_flush >= self.flush_every:
                        self.flush_activity()
            except DBAPIError as exc:
                # Once when the store goes away and once when it is back, not every second in between.
                if not away:
                    reason = str(getattr(exc, "orig", None) or exc).strip().partition("\n")[0]
                    log.warning("identity: the store is not answering; keeping the last bindings until it does: %s",
                                reason)  # fmt: skip
                away = True
                continue
            except Exception:
                log.exception("identity: refreshing bindings from the store failed; keeping the last ones")
                continue
            if away:
                log.info("identity: the store answers again")
                away = False

    # --- one cycle -------------------------------------------------------------------------------------

    def refresh(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        r = self.resolver
        with self._lock, self.sessions() as s:
            if directory_version(s) != r.directory.version:
                r.directory = load_directory(s)
                log.info("identity: %d people, %d devices loaded", len(r.directory.people),
                         len(r.directory.devices_by_mac))
            bindings = live_bindings(s)
            stale: dict[str, list[int]] = {}
            for source in BOUND_SOURCES:
                for b in bindings[source].values():
                    why = r.why_stale(b, now)
                    if why is not None and b.session_id is not None:
                        stale.setdefault(why, []).append(b.session_id)
            # Portal sessions are started by the web app, which cannot see the leases: note the MAC now, so
            # the session ends if the address is later leased to another device.
            macs = []
            for b in bindings[IdentitySource.PORTAL].values():
                if b.mac is None and b.session_id is not None:
                    lease = r.leases(b.client_ip, now)
                    if lease is not None:
                        macs.append((b.session_id, lease.mac))
            if stale or macs:
                for why, ids in stale.items():
                    end_sessions(s, reason=why, now=now, row_ids=ids)
                    log.info("identity: ended %d session(s): %s", len(ids), why)
                for row_id, mac in macs:
                    row = s.get(IdentitySession, row_id)
                    if row is not None:
                        row.mac = mac
                s.commit()
                bindings = live_bindings(s)
        r.bindings = bindings

    def flush_activity(self) -> None:
        """Write the proxy's latest request times for bound addresses back to their sessions."""
        self._last_flush = time.monotonic()
        activity = dict(self.resolver.activity)
        changed = {ip: t for ip, t in activity.items() if self._flushed.get(ip) != t}
        if not changed:
            return
        with self._lock, self.sessions() as s:
            for source in BOUND_SOURCES:
                for ip, b in self.resolver.bindings[source].items():
                    t = changed.get(ip)
                    if t is not None and b.session_id is not None and t > b.last_seen_at:
                        touch_session(s, b.session_id, t)
            s.commit()
        self._flushed.update(changed)

    # --- writers in this process (the RADIUS listener) -------------------------------------------------

    def bind(self, *, client_ip: str, source: IdentitySource, username: str, mac: str | None = None,
             radius_session_id: str | None = None, nas: str | None = None, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        with self._lock, self.sessions.begin() as s:
            existing = self.resolver.bindings[source].get(client_ip)
            if existing is not None and existing.username == username.lower() and existing.mac == mac:
                if existing.session_id is not None:
                    touch_session(s, existing.session_id, now)
            else:
                start_session(s, client_ip=client_ip, source=source, username=username, now=now, mac=mac,
                              radius_session_id=radius_session_id, nas=nas)
        self.wake()

    def unbind(self, *, client_ip: str, source: IdentitySource, reason: str, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        with self._lock, self.sessions.begin() as s:
            end_sessions(s, client_ip=client_ip, source=source, reason=reason, now=now)
        self.wake()

    def on_accounting(self, event: AccountingEvent) -> None:
        """Record one RADIUS accounting event (called from the listener's thread)."""
        radius = IdentitySource.RADIUS
        if event.status in ("on", "off"):
            # The controller restarted: every session it reported is gone.
            with self._lock, self.sessions.begin() as s:
                end_sessions(s, source=radius, nas=event.nas, reason="radius_stop", now=datetime.now(UTC))
            self.wake()
            return
        if not event.framed_ip or not event.username:
            # A Start before the client has an address says nothing about who is behind an IP.
            return
        names = usernames_for(event.username)
        people = self.resolver.directory.people
        username = next((n for n in names if n in people), names[-1])
        if event.status == "stop":
            with self._lock, self.sessions.begin() as s:
                end_sessions(s, client_ip=event.framed_ip, source=radius, reason="radius_stop",
                             now=datetime.now(UTC), radius_session_id=event.session_id)
            self.wake()
            return
        self.bind(client_ip=event.framed_ip, source=radius, username=username, mac=event.mac,
                  radius_session_id=event.session_id, nas=event.nas)
