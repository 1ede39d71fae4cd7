"""Grants from the store compiled against the running policy: list names become that policy's list bits.

Run on every change of the grants and on every policy swap, so a reload that reorders or renumbers the lists keeps
each grant meaning the same sites. A grant naming a list the policy no longer has, or one it may never lift, is
left out and reported, never widened.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.policy.compiled import CompiledPolicy
from gateway.policy.exceptions import ExceptionSet, compile_grant
from gateway.policy.model import ExceptionGrant


def compile_store_grants(compiled: CompiledPolicy, grants: Sequence[ExceptionGrant]) -> tuple[ExceptionSet, list[str]]:
    bits = {name: 1 << i for i, name in enumerate(compiled.names)}
    kept, problems = [], []
    for grant in grants:
        unknown = [name for name in grant.lists if name not in compiled.policy.lists]
        if unknown:
            problems.append(f"{grant.id}: names lists the running policy does not have: {', '.join(unknown)}")
            continue
        unliftable = [name for name in grant.lists if bits[name] & compiled.unliftable_mask]
        unliftable += [domain for domain in grant.domains if _listed_bits(compiled, domain) & compiled.unliftable_mask]
        if unliftable:
            problems.append(f"{grant.id}: names sites no exception may lift: {', '.join(unliftable)}")
            continue
        kept.append(compile_grant(grant, bits, compiled.zone))
    return ExceptionSet(tuple(kept)), problems


def _listed_bits(compiled: CompiledPolicy, domain: str) -> int:
    bits = 0
    for _, entry_bits in compiled.domains.match(domain):
        bits |= entry_bits
    return bits
