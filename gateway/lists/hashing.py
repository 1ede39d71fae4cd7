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


def hash_domain(domain: str) -> int:
    """The hash of one normalised domain."""
    return int.from_bytes(blake2b(domain.encode(), digest_size=8).digest(), "little")


def hash_domains(domains: Iterable[str]) -> np.ndarray:
    """Hashes of many normalised domains as a uint64 array, in the given order (about 0.5 s a million)."""
    # One C-level digest per name and a single buffer conversion: no Python int is made per entry.
    digests = b"".join([blake2b(d.encode(), digest_size=8).digest() for d in domains])
    return np.frombuffer(digests, dtype=HASH_DTYPE).copy()


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
