"""The on-disk spool: access-log batches the database could not take, kept in order until it is back.

One JSON-lines file per batch, named by a rising sequence number and its owner; written to a temporary name,
synced and renamed, so a crash leaves either a whole batch or none. A writer may `reserve` a number when it takes
a batch and write the batch under it later, so a batch spooled after newer rows were spilled still comes back
before them.

Several processes (`gateway run --workers N`) may share one directory. Each process is an owner with a name of its
own (pid and a random part, so a reused pid is a new owner), holding an `fcntl.flock` on `<owner>.owner` for as
long as it lives; it writes, deletes the temporaries of, and delivers only its own batches. An owner whose lock
can be taken is dead: whoever takes it adopts its batches, renaming each to a number of its own (a rename is
atomic, and only the lock holder renames, so no batch is delivered twice) and deleting its temporaries and lock
file. A process adopts when it opens a spool and then every few seconds while it looks for work. Batches from
before owners were named (`<number>.jsonl`) are adopted the same way, under `legacy.owner`.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import threading
import time
import weakref
from datetime import datetime
from pathlib import Path
from typing import Any

_SUFFIX = ".jsonl"
_LOCK = ".owner"
_LEGACY = "legacy"
# Seconds between looks for the batches of owners that died meanwhile.
ADOPT_INTERVAL = 2.0

# This process's owner name and, per directory, the open lock file that says it is alive and the next number:
# every Spool of one process on one directory shares them, so they never hand out the same name.
_process: dict[str, Any] = {"pid": None}
_process_lock = threading.Lock()


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    raise TypeError(f"cannot spool {type(value).__name__}")


def _decode(obj: dict[str, Any]) -> object:
    if obj.keys() == {"$dt"}:
        return datetime.fromisoformat(obj["$dt"])
    return obj


def _batches(directory: Path, suffix: str) -> list[tuple[int, str, Path]]:
    """Number, owner and path of each batch file (`<number>.<owner><suffix>`, or `<number><suffix>` from before
    owners), by number."""
    found = []
    for path in directory.glob(f"*{suffix}"):
        number, _, owner = path.name.removesuffix(suffix).partition(".")
        if number.isdigit():
            found.append((int(number), owner or _LEGACY, path))
    return sorted(found)


def _take_lock(path: Path, *, wait: bool) -> int | None:
    """An open descriptor holding the flock on `path` (made if missing), or None if another holds it. The file
    must still be the one at `path` once locked: one an adopter unlinked meanwhile proves nothing."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
        if not wait:
            return None


class _Owner:
    """This process in one spool directory: its name, its lock and its numbering, shared by its Spools there."""

    def __init__(self, directory: Path, key: str) -> None:
        self.directory = directory
        self.key = key
        self.name = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.fd = _take_lock(directory / f"{self.name}{_LOCK}", wait=True)
        self.spools = 0
        self.next = 1
        self.numbering = threading.Lock()
        self.adopting = threading.Lock()
        self.adopted_at = float("-inf")


def _owner(directory: Path) -> _Owner:
    with _process_lock:
        if _process["pid"] != os.getpid():  # a forked child is an owner of its own
            _process.clear()
            _process["pid"] = os.getpid()
        resolved = directory.resolve()
        key = str(resolved)
        if key not in _process:
            _process[key] = _Owner(resolved, key)
        owner: _Owner = _process[key]
        owner.spools += 1
        return owner


def _let_go(owner: _Owner) -> None:
    """The last Spool of this process on a directory is gone: its lock is let go (any batches left are then
    adoptable), and its lock file removed if it has none."""
    with _process_lock:
        owner.spools -= 1
        if owner.spools or _process.get(owner.key) is not owner:
            return
        del _process[owner.key]
        if owner.fd is not None:
            if not any(name == owner.name for _, name, _ in _batches(owner.directory, _SUFFIX)):
                (owner.directory / f"{owner.name}{_LOCK}").unlink(missing_ok=True)
            os.close(owner.fd)
            owner.fd = None


class Spool:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._owner = _owner(self.directory)
        weakref.finalize(self, _let_go, self._owner)
        highest = max((number for number, _, _ in _batches(self.directory, _SUFFIX)), default=0)
        with self._owner.numbering:
            self._owner.next = max(self._owner.next, highest + 1)
        self.adopt()

    @property
    def owner(self) -> str:
        return self._owner.name

    def pending(self, before: int | None = None) -> list[Path]:
        """This process's spooled batches (with any it adopted from dead owners), oldest first; only those
        numbered below `before` if given."""
        if time.monotonic() - self._owner.adopted_at >= ADOPT_INTERVAL:
            self.adopt()
        mine = [(number, path) for number, owner, path in _batches(self.directory, _SUFFIX) if owner == self.owner]
        return [path for number, path in mine if before is None or number < before]

    def adopt(self) -> int:
        """Take over the batches of owners that died; returns how many."""
        with self._owner.adopting:
            self._owner.adopted_at = time.monotonic()
            owners = {owner for _, owner, _ in _batches(self.directory, _SUFFIX)}
            owners.update(lock.name.removesuffix(_LOCK) for lock in self.directory.glob(f"*{_LOCK}"))
            owners.discard(self._owner.name)
            return sum(self._adopt(owner) for owner in sorted(owners))

    def _adopt(self, owner: str) -> int:
        lock = self.directory / f"{owner}{_LOCK}"
        fd = _take_lock(lock, wait=False)
        if fd is None:
            return 0  # alive, or being adopted by another
        try:
            # Listed under the lock: what was seen before it may have been adopted by someone else meanwhile.
            paths = self._owned_by(owner, _SUFFIX)
            for path in paths:
                os.replace(path, self._path(self.reserve()))
            for leftover in self._owned_by(owner, ".tmp"):
                leftover.unlink(missing_ok=True)
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)
        return len(paths)

    def _owned_by(self, owner: str, suffix: str) -> list[Path]:
        return [path for _, name, path in _batches(self.directory, suffix) if name == owner]

    def reserve(self) -> int:
        """The next batch number, for a batch that may be written later. Numbers never used leave gaps, which
        are harmless."""
        with self._owner.numbering:
            number = self._owner.next
            self._owner.next += 1
            return number

    def _path(self, number: int) -> Path:
        return self.directory / f"{number:016d}.{self._owner.name}{_SUFFIX}"

    def write(self, rows: list[dict[str, Any]], number: int | None = None) -> Path:
        """Write a batch, under a number `reserve` gave or the next one."""
        path = self._path(self.reserve() if number is None else number)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, default=_encode, separators=(",", ":")))
                f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line, object_hook=_decode) for line in f if line.strip()]

    @staticmethod
    def remove(path: Path) -> None:
        path.unlink()
