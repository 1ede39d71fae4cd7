"""The stable 64-bit hash every list entry and looked-up host suffix is stored and compared as.

Stable across processes and machines (unlike `hash()`), so compiled caches stay valid across restarts. 64 bits
keep a false match between a looked-up suffix and millions of entries around one in 10^12 per lookup.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

import numpy as np

# Hashes are little-endian uint64, in memory and in compiled caches alike.
HASH_DTYPE = np.dtype("<u8")
# Named in compiled caches: a change of algorithm must invalidate every cache written with the old one.
HASH_ALGORITHM = "blake2b-8-le"

# Copying a ready hasher costs about half of constructing one with its digest size: the hot path uses `.copy()`.
HASHER = blake2b(digest_size=8)


def hash_domain(domain: str) -> int:
    """The hash of one normalised domain."""
    h = HASHER.copy()
    h.update(domain.encode())
    return int.from_bytes(h.digest(), "little")


def hash_domains(domains: Iterable[str]) -> np.ndarray:
    """Hashes of many normalised domains as a uint64 array, in the given order (about 0.5 s a million)."""
    # One encode for all names, one C-level digest each, and a single buffer conversion: no Python int is made
    # per entry. Normalised domains never contain a newline, so splitting the joined text gives them back.
    names = domains if isinstance(domains, list) else list(domains)
    if not names:
        return np.empty(0, dtype=HASH_DTYPE)
    copy = HASHER.copy
    digests = []
    append = digests.append
    for name in "\n".join(names).encode().split(b"\n"):
        h = copy()
        h.update(name)
        append(h.digest())
    if len(digests) != len(names):
        raise ValueError("a domain to hash contains a newline: normalise it first")
    return np.frombuffer(b"".join(digests), dtype=HASH_DTYPE).copy()


def sorted_unique(hashes: np.ndarray) -> np.ndarray:
    """The distinct hashes in ascending order: the form the index searches and the compiled cache stores."""
    # Sort and drop repeats: numpy 2's hash-based np.unique is ten times slower on millions of uint64.
    ordered = np.sort(np.asarray(hashes, dtype=HASH_DTYPE))
    return ordered[first_of_runs(ordered)]


def first_of_runs(ordered: np.ndarray) -> np.ndarray:
    """A boolean mask of the elements of a sorted array that differ from their predecessor."""
    keep = np.empty(len(ordered), dtype=bool)
    keep[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return keep


def is_sorted_unique(hashes: np.ndarray) -> bool:
    return len(hashes) < 2 or bool(np.all(hashes[1:] > hashes[:-1]))
