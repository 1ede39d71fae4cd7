"""The school's local blocks (one-click blocks from reports, kept in the store) laid over a compiled policy.

They become entries of the list `reports.block_list` names, on top of the list's files, without reading or
merging any list again: a whole-site block overrides the list bits of its one domain (`OverlayIndex`, as a
proposed change does), so it covers the site's subdomains; a URL block adds a host/path prefix beside the URL
index. Both the request decision and the CONNECT/TLS server-name check ask these same indexes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.lists.hosts import normalise_host, normalise_url_prefix, split_url_prefix, suffixes
from gateway.lists.index import DomainIndex, UrlIndex
from gateway.policy.compiled import CompiledPolicy
from gateway.policy.proposed_change import OverlayIndex


@dataclass(frozen=True, slots=True)
class LocalEntry:
    host: str
    # None blocks the whole site; otherwise paths starting with this prefix.
    path_prefix: str | None = None


def site_of(host: str) -> str | None:
    """The domain a whole-site block names: normalised, a leading `www.` dropped so the bare domain and every
    subdomain are covered too (as list entries are)."""
    normal = normalise_host(host)
    if normal is None:
        return None
    return normal[4:] if normal.startswith("www.") and normal.count(".") >= 2 else normal


class LocalDomainIndex(OverlayIndex):
    """The policy's domain index with the local blocks' domains added to one list."""

    __slots__ = ("names", "_count")

    def __init__(self, base: DomainIndex, entries: dict[str, int]) -> None:
        super().__init__(base, entries)
        self.names = base.names
        self._count = len(base) + len(entries)

    def names_in(self, mask: int) -> tuple[str, ...]:
        return self._base.names_in(mask)

    def __len__(self) -> int:
        return self._count


class LocalUrlIndex:
    """The policy's URL index with the local blocks' URL prefixes added to one list."""

    __slots__ = ("names", "_base", "_bit", "_by_host", "_count")

    def __init__(self, base: UrlIndex, bit: int, entries: Iterable[str]) -> None:
        self.names = base.names
        self._base = base
        self._bit = bit
        by_host: dict[str, list[tuple[str, str, int]]] = {}
        for entry in entries:
            host, prefix = split_url_prefix(entry)
            by_host.setdefault(host, []).append((prefix, entry, bit))
        self._by_host = {host: sorted(items, key=lambda item: -len(item[0])) for host, items in by_host.items()}
        self._count = len(base) + sum(len(items) for items in self._by_host.values())

    def match(self, host: str, path: str) -> list[tuple[str, int]]:
        found = self._base.match(host, path)
        lowered = path.lower()
        for suffix in suffixes(host):
            for prefix, entry, bit in self._by_host.get(suffix, ()):
                if lowered.startswith(prefix):
                    found.append((entry, bit))
        return found

    def host_mask(self, host: str) -> int:
        local = any(suffix in self._by_host for suffix in suffixes(host))
        return self._base.host_mask(host) | (self._bit if local else 0)

    def names_in(self, mask: int) -> tuple[str, ...]:
        return self._base.names_in(mask)

    def __len__(self) -> int:
        return self._count


def with_local_blocks(compiled: CompiledPolicy, blocks: Iterable[LocalEntry]) -> CompiledPolicy:
    """`compiled` with the blocks added to its `reports.block_list` list; `compiled` itself when there are none or
    the policy names no such list. A block whose host is not valid is left out (the store only takes valid ones)."""
    name = compiled.policy.reports.block_list
    blocks = tuple(blocks)
    if not blocks or name is None or name not in compiled.names:
        return compiled
    bit = 1 << compiled.names.index(name)
    sites: dict[str, int] = {}
    urls: list[str] = []
    for block in blocks:
        if block.path_prefix is None:
            site = site_of(block.host)
            if site is not None and site not in sites:
                own = next((mask for entry, mask in compiled.domains.match(site) if entry == site), 0)
                sites[site] = own | bit
        else:
            entry = normalise_url_prefix(block.host + block.path_prefix)
            if entry is not None:
                urls.append(entry)
    return dataclasses.replace(
        compiled,
        domains=LocalDomainIndex(compiled.domains, sites) if sites else compiled.domains,
        urls=LocalUrlIndex(compiled.urls, bit, urls) if urls else compiled.urls,
    )
