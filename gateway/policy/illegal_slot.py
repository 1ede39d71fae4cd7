"""Whether the illegal-content slot (the IWF and CTIRU lists from a licensed provider) holds any entries.

An empty slot is allowed, since a school may not have its licence yet, but it must never go unnoticed: the
warning goes to `gateway policy validate`, the proxy's start-up log and the console's dashboard. Entries in
lists marked `test_entries` (such as `illegal-content.test`, which checks the slot end to end) do not count.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from gateway.policy.list_sources import read_lists
from gateway.policy.loader import PolicyError, load_policy
from gateway.policy.model import Policy

# The dashboard asks on every view; the answer changes only when the school's provider delivers a list.
DASHBOARD_CACHE_SECONDS = 60.0

_dashboard_cache: dict[Path, tuple[float, str | None]] = {}


def licensed_lists(policy: Policy) -> list[str]:
    return [name for name in policy.illegal if not policy.lists[name].test_entries]


def slot_warning(policy: Policy, sizes: Mapping[str, int]) -> str | None:
    """The warning to show when the licensed illegal-content lists hold no entries, else None."""
    licensed = licensed_lists(policy)
    if any(sizes.get(name, 0) for name in licensed):
        return None
    named = f" ({', '.join(licensed)})" if licensed else ""
    return (
        f"THE ILLEGAL-CONTENT SLOT IS EMPTY: the licensed IWF/CTIRU lists{named} hold no entries, so known child "
        "sexual abuse and terrorist content is not blocked by list. Ask your licensed filtering provider to deliver "
        "them (see policies/lists/illegal_iwf.txt)."
    )


def slot_warning_for_file(path: Path | str) -> str | None:
    """The slot warning for a policy file, reading only its illegal lists; None too when the policy does not load
    (that is `gateway policy validate`'s to report). Cached for a minute."""
    key = Path(path).resolve()
    now = time.monotonic()
    cached = _dashboard_cache.get(key)
    if cached is not None and now - cached[0] < DASHBOARD_CACHE_SECONDS:
        return cached[1]
    try:
        loaded = load_policy(key)
        entries = read_lists(loaded, only=loaded.policy.illegal)
    except (PolicyError, OSError):
        warning = None
    else:
        warning = None if entries.problems else slot_warning(loaded.policy, entries.sizes)
    _dashboard_cache[key] = (now, warning)
    return warning
