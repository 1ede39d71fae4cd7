"""A job one process on the machine does at a time (the daily purge, the RADIUS listener), among proxy workers that
share a folder: whoever holds an `fcntl.flock` on the job's file does it. The kernel lets go when that process
dies, however it dies, so another worker takes the job over at its next try."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class MachineLock:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def take(self) -> bool:
        """Whether this process holds the lock now (taking it if no other process does)."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        # Which process does the job, for a person looking at the folder.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
