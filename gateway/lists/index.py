"""The combined list indexes the decision engine asks, once per request, which lists hold a host or URL.

`DomainIndex` holds every domain of every list in two parallel arrays: the sorted distinct 64-bit hashes and, for
each, the id of its list mask in a small table of Python ints (bit i set = list `names[i]` holds it). About 9 to
12 bytes an entry whatever the number of lists. A directory of bucket starts, indexed by a hash's top bits,
narrows each lookup to a handful of neighbouring entries: with millions of entries a plain binary search costs a
cache miss at every step, which dominated the tail latency.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from gateway.lists.hashing import HASH_DTYPE, HASHER, first_of_runs, hash_domains, is_sorted_unique
from gateway.lists.hosts import normalise_host, normalise_url_prefix, split_url_prefix, suffixes

# Normalised domain strings, or a uint64 array of their hashes (a compiled cache, see `gateway.lists.cache`).
type DomainSource = Iterable[str] | np.ndarray


class DomainIndex:
    __slots__ = ("names", "_hashes", "_ids", "_masks", "_size", "_native", "_view", "_id_view", "_shift", "_buckets")

    names: tuple[str, ...]

    def __init__(self, names: tuple[str, ...], hashes: np.ndarray, ids: np.ndarray, masks: tuple[int, ...]) -> None:
        self.names = names
        self._hashes = hashes
        self._ids = ids
        self._masks = masks
        self._size = len(hashes)
        # Native byte order for memoryview reads (no copy on little-endian machines, where HASH_DTYPE is native).
        self._native = hashes.astype(np.uint64, copy=False)
        self._view = memoryview(np.ascontiguousarray(self._native)).cast("B").cast("Q")
        self._id_view = memoryview(np.ascontiguousarray(ids)).cast("B").cast(ids.dtype.char)
        # About four entries a bucket; bucket b holds the hashes whose top bits are b.
        bits = min(max(int(self._size // 4).bit_length(), 8), 24)
        self._shift = 64 - bits
        tops = np.arange(1, 1 << bits, dtype=np.uint64) << np.uint64(self._shift)
        starts = np.concatenate(([0], self._native.searchsorted(tops), [self._size])).astype(np.uint32)
        self._buckets = memoryview(starts).cast("B").cast("I")

    @classmethod
    def build(cls, names: Sequence[str], sources: Mapping[str, Sequence[DomainSource]]) -> DomainIndex:
        """Combine lists into one index. List `names[i]` is bit `1 << i` of every mask.

        Strings are normalised here (ValueError on an invalid one); arrays are taken as hashes of normalised
        domains, and one already sorted and distinct is used as it is (a memory-mapped cache stays mapped).
        """
        names = tuple(names)
        if len(set(names)) != len(names):
            raise ValueError(f"list names repeat: {names}")
        unknown = set(sources) - set(names)
        if unknown:
            raise ValueError(f"sources for lists not named: {sorted(unknown)}")
        arrays: list[np.ndarray] = []
        bits: list[int] = []
        for bit, name in enumerate(names):
            for source in sources.get(name, ()):
                arrays.append(_hash_array(name, source))
                bits.append(bit)
        arrays_bits = [(a, b) for a, b in zip(arrays, bits, strict=True) if len(a)]
        if not arrays_bits:
            return cls(names, np.empty(0, HASH_DTYPE), np.empty(0, np.uint8), ())
        if len(arrays_bits) == 1 and is_sorted_unique(arrays_bits[0][0]):
            hashes, bit = arrays_bits[0]
            return cls(names, hashes, np.zeros(len(hashes), np.uint8), (1 << bit,))
        return cls(names, *_merge(arrays_bits, len(names)))

    def match(self, host: str) -> list[tuple[str, int]]:
        """(suffix, mask) for each label suffix of a normalised host that any list holds, longest first."""
        size = self._size
        if not size:
            return []
        data = host.encode()
        starts = [0]
        # An IP literal is only itself; a canonical name never ends in an all-digit label (see hosts.py).
        if not (":" in host or (host[-1:].isdigit() and host.rpartition(".")[2].isdigit())):
            i = data.find(b".")
            while i >= 0:
                starts.append(i + 1)
                i = data.find(b".", i + 1)
        copy = HASHER.copy
        view, buckets, shift = self._view, self._buckets, self._shift
        out = []
        for start in starts:
            h = copy()
            h.update(data[start:])
            value = int.from_bytes(h.digest(), "little")
            bucket = value >> shift
            end = buckets[bucket + 1]
            position = bisect_left(view, value, buckets[bucket], end)
            if position < end and view[position] == value:
                out.append((host[start:], self._masks[self._id_view[position]]))
        return out

    def names_in(self, mask: int) -> tuple[str, ...]:
        """The names of the lists whose bits are set in a mask."""
        return _names_in(self.names, mask)

    def __len__(self) -> int:
        return len(self._hashes)

    @property
    def nbytes(self) -> int:
        return self._hashes.nbytes + self._ids.nbytes + self._buckets.nbytes


class UrlIndex:
    """URL-prefix lists: entries `host/path-prefix`, matched on a host label suffix and a path prefix.

    URL lists are tens of thousands of entries, not millions, so a dict from host to its prefixes is small and
    answers with one probe per host suffix.
    """

    __slots__ = ("names", "_by_host", "_size")

    names: tuple[str, ...]

    def __init__(self, names: tuple[str, ...], by_host: dict[str, tuple[tuple[str, str, int], ...]]) -> None:
        self.names = names
        self._by_host = by_host
        self._size = sum(len(v) for v in by_host.values())

    @classmethod
    def build(cls, names: Sequence[str], sources: Mapping[str, Iterable[str]]) -> UrlIndex:
        """Combine URL lists; entries are normalised here (ValueError on an invalid one)."""
        names = tuple(names)
        if len(set(names)) != len(names):
            raise ValueError(f"list names repeat: {names}")
        unknown = set(sources) - set(names)
        if unknown:
            raise ValueError(f"sources for lists not named: {sorted(unknown)}")
        masks: dict[str, int] = {}
        for bit, name in enumerate(names):
            if isinstance(sources.get(name), str):
                raise TypeError(f"list {name!r}: give an iterable of entries, not one string")
            for raw in sources.get(name, ()):
                entry = normalise_url_prefix(raw)
                if entry is None:
                    raise ValueError(f"list {name!r}: not a valid URL entry: {raw!r}")
                masks[entry] = masks.get(entry, 0) | 1 << bit
        # Each distinct mask is one shared int object, however many entries carry it.
        shared: dict[int, int] = {}
        grouped: dict[str, list[tuple[str, str, int]]] = {}
        for entry, mask in masks.items():
            host, prefix = split_url_prefix(entry)
            grouped.setdefault(host, []).append((prefix, entry, shared.setdefault(mask, mask)))
        by_host = {
            host: tuple(sorted(items, key=lambda item: (-len(item[0]), item[0]))) for host, items in grouped.items()
        }
        return cls(names, by_host)

    def match(self, host: str, path: str) -> list[tuple[str, int]]:
        """(entry, mask) for each entry whose host is a label suffix of the normalised host and whose path is a
        prefix of the path (compared lower-case; the query string is part of the path). Longest host first, then
        longest path."""
        get = self._by_host.get
        if not self._size:
            return []
        found = []
        entries = get(host)
        if entries:
            found.append(entries)
        # Probing suffixes in place: most hosts have no URL entries, so no suffix list is built for them.
        if not (":" in host or (host[-1:].isdigit() and host.rpartition(".")[2].isdigit())):
            i = host.find(".")
            while i >= 0:
                entries = get(host[i + 1 :])
                if entries:
                    found.append(entries)
                i = host.find(".", i + 1)
        if not found:
            return []
        path = path.lower()
        if not path.startswith("/"):
            path = "/" + path
        return [(entry, mask) for entries in found for prefix, entry, mask in entries if path.startswith(prefix)]

    def host_mask(self, host: str) -> int:
        """The lists with an entry, any path, on the normalised host or a domain above it: for a connection whose
        paths the gateway will not see."""
        if not self._size:
            return 0
        found = 0
        for suffix in suffixes(host):
            for _, _, mask in self._by_host.get(suffix, ()):
                found |= mask
        return found

    def names_in(self, mask: int) -> tuple[str, ...]:
        """The names of the lists whose bits are set in a mask."""
        return _names_in(self.names, mask)

    def __len__(self) -> int:
        return self._size


def _names_in(names: tuple[str, ...], mask: int) -> tuple[str, ...]:
    return tuple(name for bit, name in enumerate(names) if mask >> bit & 1)


def _hash_array(name: str, source: DomainSource) -> np.ndarray:
    if isinstance(source, np.ndarray):
        if source.dtype.kind not in "ui" or source.ndim != 1:
            raise TypeError(f"list {name!r}: a hash array must be one-dimensional uint64, not {source.dtype}")
        return source if source.dtype == HASH_DTYPE else source.astype(HASH_DTYPE)
    if isinstance(source, str):
        raise TypeError(f"list {name!r}: give an iterable of domains, not one string")
    normalised = []
    for raw in source:
        host = normalise_host(raw)
        if host is None:
            raise ValueError(f"list {name!r}: not a valid domain: {raw!r}")
        normalised.append(host)
    return hash_domains(normalised)


def _merge(arrays_bits: list[tuple[np.ndarray, int]], nlists: int) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Sorted distinct hashes, mask ids and the mask table of several hash arrays tagged with list bits."""
    hashes = np.concatenate([a for a, _ in arrays_bits])
    bits = np.repeat(
        np.array([b for _, b in arrays_bits], dtype=np.uint32), [len(a) for a, _ in arrays_bits]
    )
    # A stable sort merges the already-sorted runs of compiled caches in near-linear time.
    order = np.argsort(hashes, kind="stable")
    hashes = hashes[order]
    bits = bits[order]
    del order
    starts = np.flatnonzero(first_of_runs(hashes))
    distinct = hashes[starts]
    del hashes
    # Masks are built one 64-list word at a time: each entry's bits in the word, the word's distinct values, and
    # the distinct combinations with the words before (so the mask table stays as small as the data allows).
    masks: list[int] = [0]
    ids = np.zeros(len(distinct), dtype=np.int64)
    for word in range((nlists + 63) // 64):
        in_word = (bits >> 6) == word
        shifted = np.where(in_word, np.left_shift(np.uint64(1), (bits & 63).astype(np.uint64)), np.uint64(0))
        table, word_ids = _distinct_with_ids(np.bitwise_or.reduceat(shifted, starts))
        word_masks = [int(v) << (64 * word) for v in table.tolist()]
        combos, ids = _distinct_with_ids(ids * len(word_masks) + word_ids)
        masks = [masks[c // len(word_masks)] | word_masks[c % len(word_masks)] for c in combos.tolist()]
        ids = ids.astype(np.int64)
    return distinct, ids.astype(_id_dtype(len(masks))), tuple(masks)


def _distinct_with_ids(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values, sorted, and each value's index among them."""
    # Small values index a lookup table directly; otherwise sort (numpy 2's hash-based np.unique is slow here).
    if values.min() >= 0 and values.max() < 1 << 16:
        present = np.flatnonzero(np.bincount(values.astype(np.intp)))
        lookup = np.zeros(int(present[-1]) + 1, dtype=np.uint32)
        lookup[present] = np.arange(len(present), dtype=np.uint32)
        return present.astype(values.dtype), lookup[values.astype(np.intp)]
    ordered = np.sort(values)
    table = ordered[first_of_runs(ordered)]
    return table, np.searchsorted(table, values)


def _id_dtype(count: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if count <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.uint64)
