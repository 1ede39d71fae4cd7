"""The proxy's record of wrong passwords, shared by every worker on the machine: a small SQLite file in the spool
folder (`sign-in-failures.db`), so a guesser spreading attempts over the workers' ports meets one limit.

An attempt is written down before its password is checked and removed only when it proves right, so a burst of
attempts sent at once cannot all pass the count before any has failed. Called from worker threads only (each
call is a short transaction, with a short busy timeout), never from the event loop.

If the file cannot be used (disk full, corrupt, removed and not re-creatable) each worker goes on counting in its
own memory, where it has counted its own attempts all along: limits still hold, per worker (so at most N times
the limit with N workers, never unlimited), people with the right password still get in, and the error is logged
once a minute until the file works again (it is reopened, or made anew, at each attempt).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.identity.attempt_limits import AttemptLimits, FailureCounts, Refusal, account_delay

log = logging.getLogger(__name__)

FILE_NAME = "sign-in-failures.db"
BUSY_SECONDS = 1.0
ERROR_LOG_SECONDS = 60.0
PRUNE_SECONDS = 60.0
# A password proved right from an address skips the record for this long (the validators cache it as long): a
# browser sends its proxy credentials with every plain-HTTP request, and those are not guesses.
PROVEN_SECONDS = 300.0
# Longer names are cut: one counted name still, and no room for a guesser to fill the file.
MOST_NAME = 256

SCHEMA = """
CREATE TABLE IF NOT EXISTS failure (address TEXT NOT NULL, username TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS failure_by_client ON failure (address, username, at);
CREATE INDEX IF NOT EXISTS failure_by_account ON failure (username, at);
"""


@dataclass(frozen=True, slots=True)
class Verdict:
    refusal: Refusal | None
    delay: float
    ticket: Ticket | None


@dataclass(frozen=True, slots=True)
class Ticket:
    """An attempt written down before its password is checked."""

    address: str
    username: str
    at: float


class LocalFailures:
    """This process's own attempts, by address and by account, kept whether or not the shared file works."""

    def __init__(self) -> None:
        self._by_client: dict[str, list[tuple[str, float]]] = {}
        self._by_account: dict[str, list[tuple[str, float]]] = {}

    def counts(self, address: str, username: str, limits: AttemptLimits, now: float) -> FailureCounts:
        since = now - limits.account_window
        mine = _recent(self._by_client, address, since)
        return FailureCounts(
            client=sum(1 for _, at in mine if at > now - limits.window),
            client_account=sum(1 for name, _ in mine if name == username),
            account=len(_recent(self._by_account, username, since)),
        )

    def add(self, address: str, username: str, at: float) -> None:
        self._by_client.setdefault(address, []).append((username, at))
        self._by_account.setdefault(username, []).append((address, at))

    def remove(self, address: str, username: str, at: float | None = None) -> None:
        """One attempt (`at`), or all of the address's for the account."""
        def keep(entries: list[tuple[str, float]], other: str) -> list[tuple[str, float]]:
            return [(k, t) for k, t in entries if k != other or (at is not None and t != at)]

        for table, key, other in ((self._by_client, address, username), (self._by_account, username, address)):
            if key in table:
                table[key] = keep(table[key], other)
                if not table[key]:
                    del table[key]

    def prune(self, before: float) -> None:
        for table in (self._by_client, self._by_account):
            for key in list(table):
                _recent(table, key, before)

    def entries(self) -> list[tuple[str, str, float]]:
        return [(address, name, at) for address, mine in self._by_client.items() for name, at in mine]


def _recent(table: dict[str, list[tuple[str, float]]], key: str, since: float) -> list[tuple[str, float]]:
    entries = table.get(key)
    if not entries:
        return []
    if entries[0][1] <= since:
        entries = [e for e in entries if e[1] > since]
        if entries:
            table[key] = entries
        else:
            del table[key]
    return entries


class SharedFailures:
    """The SQLite file; reopened (or made anew) when it has been removed or replaced under the running workers.

    A file this process has not written to before is given the attempts it still counts (`local`), so a file
    removed under the workers is made anew with every worker's count, not emptied."""

    def __init__(self, path: Path, local: LocalFailures) -> None:
        self.path = path
        self.local = local
        self._db: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None
        self._written: tuple[int, int] | None = None

    def reserve(self, address: str, username: str, limits: AttemptLimits, now: float,
                floor: FailureCounts) -> FailureCounts:
        """The counts (at least `floor`); unless they refuse the attempt, it is written down."""
        db = self._connection()
        try:
            # IMMEDIATE: the count and the new row are one step for every worker on the machine.
            db.execute("BEGIN IMMEDIATE")
            counts = FailureCounts(
                client=_one(db, "SELECT count(*) FROM failure WHERE address = ? AND at > ?",
                            address, now - limits.window),
                client_account=_one(db, "SELECT count(*) FROM failure WHERE address = ? AND username = ? AND at > ?",
                                    address, username, now - limits.account_window),
                account=_one(db, "SELECT count(*) FROM failure WHERE username = ? AND at > ?",
                             username, now - limits.account_window),
            ).most(floor)
            if limits.refusal(counts) is None:
                db.execute("INSERT INTO failure (address, username, at) VALUES (?, ?, ?)", (address, username, now))
            db.execute("COMMIT")
            return counts
        except BaseException:
            self._rollback(db)
            raise

    def remove(self, address: str, username: str, at: float | None = None) -> None:
        """One attempt (`at`), or all of the address's for the account."""
        db = self._connection()
        if at is None:
            db.execute("DELETE FROM failure WHERE address = ? AND username = ?", (address, username))
        else:
            db.execute("DELETE FROM failure WHERE rowid IN (SELECT rowid FROM failure WHERE address = ? AND "
                       "username = ? AND at = ? LIMIT 1)", (address, username, at))

    def prune(self, before: float) -> None:
        self._connection().execute("DELETE FROM failure WHERE at <= ?", (before,))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db, self._file = None, None

    def _connection(self) -> sqlite3.Connection:
        try:
            st = os.stat(self.path)
            current: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            current = None
        if self._db is not None and current == self._file:
            return self._db
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Addresses and usernames: readable by the gateway's own user only (SQLite gives its -wal and -shm the same).
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        db = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
        try:
            # Closing must not checkpoint: SQLite then deletes the -wal and -shm by name, which after the file was
            # removed and made anew by another worker are the new file's.
            db.setconfig(sqlite3.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, True)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            st = os.stat(self.path)
            file = (st.st_dev, st.st_ino)
            if file != self._written:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("INSERT INTO failure (address, username, at) VALUES (?, ?, ?)", self.local.entries())
                db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        self._db, self._file, self._written = db, file, file
        return db

    def _rollback(self, db: sqlite3.Connection) -> None:
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
        except sqlite3.Error:
            self.close()


def _one(db: sqlite3.Connection, sql: str, *args: object) -> int:
    return int(db.execute(sql, args).fetchone()[0])


class SignInFailures:
    def __init__(self, spool: Path, limits: AttemptLimits) -> None:
        self.limits = limits
        self._local = LocalFailures()
        self._shared = SharedFailures(spool / FILE_NAME, self._local)
        self._proven: dict[tuple[str, str, str], float] = {}
        # The record's lock is held across a transaction that may wait on another worker; the proven passwords
        # have their own, so the event loop can ask about them.
        self._lock, self._proven_lock = threading.Lock(), threading.Lock()
        self._pruned_at = float("-inf")
        self._error_logged_at = float("-inf")

    def proven(self, address: str, username: str, password: str) -> bool:
        key = (address, _name(username), _digest(password))
        with self._proven_lock:
            return self._proven.get(key, 0.0) > time.monotonic()

    def attempt(self, address: str, username: str) -> Verdict:
        """Whether this device may try this account now (then the attempt is written down), and how long to wait
        before checking the password."""
        username, now = _name(username), time.time()
        with self._lock:
            local = self._local.counts(address, username, self.limits, now)
            try:
                counts = self._shared.reserve(address, username, self.limits, now, floor=local)
            except (sqlite3.Error, OSError) as e:
                self._failed(e)
                counts = local
            refusal = self.limits.refusal(counts)
            ticket = None
            if refusal is None:
                self._local.add(address, username, now)
                ticket = Ticket(address, username, now)
            self._prune(now)
        return Verdict(refusal, account_delay(counts), ticket)

    def succeeded(self, ticket: Ticket, password: str) -> None:
        """The password was right: the device's failures for the account no longer count."""
        with self._lock:
            self._local.remove(ticket.address, ticket.username)
            with self._proven_lock:
                self._proven[(ticket.address, ticket.username, _digest(password))] = time.monotonic() + PROVEN_SECONDS
            try:
                self._shared.remove(ticket.address, ticket.username)
            except (sqlite3.Error, OSError) as e:
                self._failed(e)

    def unchecked(self, ticket: Ticket) -> None:
        """The password could not be checked (the directory was away): the attempt does not count."""
        with self._lock:
            self._local.remove(ticket.address, ticket.username, at=ticket.at)
            try:
                self._shared.remove(ticket.address, ticket.username, at=ticket.at)
            except (sqlite3.Error, OSError) as e:
                self._failed(e)

    def forget(self, address: str, username: str, password: str) -> None:
        """A password proved before is wrong now (changed): the next attempt is counted again."""
        with self._proven_lock:
            self._proven.pop((address, _name(username), _digest(password)), None)

    def close(self) -> None:
        with self._lock:
            self._shared.close()

    def _prune(self, now: float) -> None:
        if now - self._pruned_at < PRUNE_SECONDS:
            return
        self._pruned_at = now
        before = now - self.limits.account_window
        self._local.prune(before)
        clock = time.monotonic()
        with self._proven_lock:
            self._proven = {k: t for k, t in self._proven.items() if t > clock}
        try:
            self._shared.prune(before)
        except (sqlite3.Error, OSError) as e:
            self._failed(e)

    def _failed(self, error: BaseException) -> None:
        self._shared.close()
        now = time.monotonic()
        if now - self._error_logged_at >= ERROR_LOG_SECONDS:
            self._error_logged_at = now
            log.error("proxy sign-in limits: %s cannot be used (%s); each worker counts wrong passwords on its own "
                      "until it can, so a guesser spreading over N workers gets up to N times the limit",
                      self._shared.path, error)


def _name(username: str) -> str:
    return username.strip().lower()[:MOST_NAME]


def _digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()
