"""The on-disk spool: access-log batches the database could not take, kept in order until it is back.

One JSON-lines file per batch, named by a rising sequence number; written to a temporary name, synced and
renamed, so a crash leaves either a whole batch or none. A writer may `reserve` a number when it takes a batch and
write the batch under it later, so a batch spooled after newer rows were spilled still comes back before them.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

_SUFFIX = ".jsonl"


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    raise TypeError(f"cannot spool {type(value).__name__}")


def _decode(obj: dict[str, Any]) -> object:
    if obj.keys() == {"$dt"}:
        return datetime.fromisoformat(obj["$dt"])
    return obj


class Spool:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob("*.tmp"):
            leftover.unlink()
        existing = self.pending()
        self._next = int(existing[-1].stem) + 1 if existing else 1
        self._numbering = threading.Lock()

    def pending(self, before: int | None = None) -> list[Path]:
        """Spooled batches, oldest first; only those numbered below `before` if given."""
        paths = sorted(self.directory.glob(f"*{_SUFFIX}"))
        return paths if before is None else [path for path in paths if int(path.stem) < before]

    def reserve(self) -> int:
        """The next batch number, for a batch that may be written later. Numbers never used leave gaps, which
        are harmless."""
        with self._numbering:
            number = self._next
            self._next += 1
            return number

    def write(self, rows: list[dict[str, Any]], number: int | None = None) -> Path:
        """Write a batch, under a number `reserve` gave or the next one."""
        path = self.directory / f"{self.reserve() if number is None else number:016d}{_SUFFIX}"
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
