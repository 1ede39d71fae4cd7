"""The access-log row for one request decision, as a plain dict the writer can queue and spool.

Pure: no proxy, no database. The mitmproxy addon gathers the pieces; this decides what is kept.
"""

from __future__ import annotations

import itertools
import os
import time
from datetime import datetime
from typing import Any

from gateway.content.search_terms import search_terms
from gateway.decisions.types import Decision
from gateway.identity.types import Identity
from gateway.store.models.access_log import reverse_host

AccessRow = dict[str, Any]


def _new_process_prefix() -> None:
    global _PROCESS, _COUNTER
    _PROCESS = os.urandom(6).hex()
    _COUNTER = itertools.count()


_PROCESS: str
_COUNTER: itertools.count[int]
_new_process_prefix()
# A forked child must not hand out its parent's ids.
os.register_at_fork(after_in_child=_new_process_prefix)


def new_row_id() -> str:
    """32 hex digits, made when the row is queued: milliseconds (so ids are time-ordered), 48 random bits drawn
    once per process, then a per-process counter. Unique without a random draw (a system call) per row: within a
    process the counter differs; across processes and sites sharing a store, the random part does."""
    return f"{time.time_ns() // 1_000_000:012x}{_PROCESS}{next(_COUNTER) & 0xFFFFFFFF:08x}"


def access_row(
    *,
    identity: Identity,
    decision: Decision,
    instant: datetime,
    method: str,
    scheme: str,
    host: str,
    path: str,
    query: str,
    status: int | None,
    size: int | None,
    keep_query: bool,
    site: str | None,
    error: str | None = None,
    port: int | None = None,
    sni: str | None = None,
    bytes_up: int | None = None,
    bytes_down: int | None = None,
    duration_ms: int | None = None,
) -> AccessRow:
    host = host.lower().rstrip(".")
    return {
        "row_id": new_row_id(),
        "at": instant,
        "site": site,
        "username": identity.username,
        "display_name": identity.display_name,
        "group_name": identity.group,
        "school_class": identity.school_class,
        "year_group": identity.year_group,
        "device": identity.device,
        "client_ip": identity.client_ip,
        "identity_source": identity.source.value,
        "method": method,
        "scheme": scheme,
        "host": host,
        "host_rev": reverse_host(host),
        "path": path or "/",
        "query": (query or None) if keep_query else None,
        "search_terms": search_terms(host, query),
        "action": decision.action.value,
        "source": decision.source.value,
        "rule": decision.rule,
        "list_name": decision.list,
        "matched": decision.matched,
        "reason": decision.reason,
        "period": decision.period.value,
        "status": status,
        "bytes": size,
        "error": error,
        "port": port,
        "sni": sni,
        "bytes_up": bytes_up,
        "bytes_down": bytes_down,
        "duration_ms": duration_ms,
    }
