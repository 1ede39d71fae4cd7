"""Compiled list caches: a domain list's sorted distinct hashes, saved so a restart opens millions of entries at once.

The cache of `<file>` is `<file>.u64.npy` (or, with a cache dir, a file named after the source's path in it) and a
`.u64.json` sidecar recording the source's size and mtime, the hash algorithm and the counts. It is reused only
while all of those still match; otherwise the source is parsed again and the cache rewritten. Both files are
written to a temporary name and renamed, so a reader sees the old cache or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from gateway.lists.files import BadLine, read_domain_file
from gateway.lists.hashing import HASH_ALGORITHM, HASH_DTYPE, hash_domains, sorted_unique

log = logging.getLogger(__name__)

CACHE_SUFFIX = ".u64.npy"
META_SUFFIX = ".u64.json"
# Smaller lists (a few thousand domains) parse in milliseconds: a cache beside them would only be clutter.
CACHE_MIN_SOURCE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class CompiledList:
    source: Path
    # Sorted distinct hashes; read-only and memory-mapped when opened from the cache.
    hashes: np.ndarray
    bad_count: int
    # The bad lines themselves are known only when the source was parsed now (not opened from the cache).
    bad: tuple[BadLine, ...]
    from_cache: bool

    def __len__(self) -> int:
        return len(self.hashes)


def load_domains(source: Path, *, cache_dir: Path | None = None) -> np.ndarray:
    """The sorted distinct hashes of a domain list file, ready for `DomainIndex.build` (see `load_compiled`)."""
    return load_compiled(source, cache_dir=cache_dir).hashes


def load_compiled(source: Path, *, cache_dir: Path | None = None) -> CompiledList:
    """The compiled form of a domain list file: from its cache when fresh, else parsed now and, for a list of
    `CACHE_MIN_SOURCE_BYTES` or more (or one already cached), the cache saved.

    A cache that cannot be written (a read-only list folder) is not an error: the list is used from memory and
    the failure logged.
    """
    source = Path(source)
    cached = open_cache(source, cache_dir=cache_dir)
    if cached is not None:
        return cached
    # A stale cache is rewritten whatever the list's size, so it never lingers out of date.
    save = source.stat().st_size >= CACHE_MIN_SOURCE_BYTES or cache_paths(source, cache_dir)[0].exists()
    return compile_list(source, cache_dir=cache_dir, save=save)


def compile_list(source: Path, *, cache_dir: Path | None = None, save: bool = True) -> CompiledList:
    """Parse a domain list file, hash it and (unless `save` is false) save its cache, best effort."""
    source = Path(source)
    stat = source.stat()
    # Bad lines are the caller's to report: a policy refuses the file (gateway.policy.list_sources).
    parsed = read_domain_file(source, distinct=False)
    hashes = sorted_unique(hash_domains(parsed.entries))
    if save:
        try:
            save_cache(source, hashes, parsed.bad_count, cache_dir=cache_dir, stat=stat)
        except OSError as exc:
            log.warning("%s: compiled cache not saved (%s); using the list from memory", source, exc)
    return CompiledList(source, hashes, parsed.bad_count, parsed.bad, from_cache=False)


def open_cache(source: Path, *, cache_dir: Path | None = None) -> CompiledList | None:
    """The cached compiled list if it matches the source as it is now, else None."""
    meta = fresh_meta(source, cache_dir=cache_dir)
    if meta is None:
        return None
    array_path, _ = cache_paths(source, cache_dir)
    try:
        hashes = np.load(array_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        log.warning("%s: compiled cache unreadable (%s); recompiling", array_path, exc)
        return None
    if hashes.dtype != HASH_DTYPE or hashes.ndim != 1 or len(hashes) != meta["entries"]:
        log.warning("%s: compiled cache does not match its record; recompiling", array_path)
        return None
    return CompiledList(source, hashes, int(meta["bad_lines"]), (), from_cache=True)


def fresh_meta(source: Path, *, cache_dir: Path | None = None) -> dict[str, Any] | None:
    """The cache record of a list file if it exists and still matches the file's size and mtime."""
    _, meta_path = cache_paths(source, cache_dir)
    try:
        meta = json.loads(meta_path.read_text())
        stat = source.stat()
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    expected = {"algorithm": HASH_ALGORITHM, "source_size": stat.st_size, "source_mtime_ns": stat.st_mtime_ns}
    if any(meta.get(k) != v for k, v in expected.items()) or not isinstance(meta.get("entries"), int):
        return None
    return meta


def save_cache(
    source: Path,
    hashes: np.ndarray,
    bad_count: int,
    *,
    cache_dir: Path | None = None,
    stat: os.stat_result | None = None,
) -> Path:
    """Save the compiled hashes of a list file. `stat` is the source's, taken before it was read, so a change
    made while it was being compiled makes the cache stale rather than wrongly fresh."""
    stat = stat or source.stat()
    array_path, meta_path = cache_paths(source, cache_dir)
    array_path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "algorithm": HASH_ALGORITHM,
        "source_size": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
        "entries": int(len(hashes)),
        "bad_lines": int(bad_count),
    }
    # The array goes first: a record naming a fresh source never sits beside an older array of the wrong length
    # for long, and `open_cache` checks the length anyway.
    _atomic_write(array_path, lambda f: np.save(f, np.ascontiguousarray(hashes, dtype=HASH_DTYPE)))
    _atomic_write(meta_path, lambda f: f.write(json.dumps(meta, indent=1).encode()))
    return array_path


def cache_paths(source: Path, cache_dir: Path | None = None) -> tuple[Path, Path]:
    """Where the compiled array and its record of a list file live."""
    if cache_dir is None:
        return source.with_name(source.name + CACHE_SUFFIX), source.with_name(source.name + META_SUFFIX)
    # Named after the source's full path, so two lists called `domains` never share a cache.
    tag = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:16]
    stem = f"{source.parent.name}-{source.name}-{tag}"
    return cache_dir / (stem + CACHE_SUFFIX), cache_dir / (stem + META_SUFFIX)


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600 files; the gateway may run as another user than the one who compiled.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
