"""The access-log row for one request decision, as a plain dict the writer can queue and spool; and that row as
every database will store it.

Pure: no proxy, no database. The mitmproxy addon gathers the pieces; this decides what is kept.
"""

from __future__ import annotations

import itertools
import os
import time
from datetime import datetime
from typing import Any

from gateway.content.search_terms import search_terms
from gateway.content.findings import ContentFinding
from gateway.decisions.types import Decision
from gateway.identity.types import Identity
from gateway.store.models.access_log import AccessLogEntry, reverse_host

AccessRow = dict[str, Any]

# What replaces a NUL, which PostgreSQL refuses in text: the same escape a programmer would write, readable and
# searchable by the officer.
NUL_MARK = "\\x00"
# Ends a value cut to its column's length.
CUT_MARK = "…[cut]"
COLUMNS = frozenset(c.name for c in AccessLogEntry.__table__.columns if c.name != "id")
# (column, longest value it takes or None) for every text column.
_TEXT_COLUMNS = [
    (c.name, getattr(c.type, "length", None))
    for c in AccessLogEntry.__table__.columns
    if c.name != "id" and c.type.python_type is str
]


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
    finding: ContentFinding | None = None,
    alert: bool = False,
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
        "search_terms": search_terms(host, query, path),
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
        # Not a column: the writer takes it out and makes the officer's report from it.
        "finding": finding.as_dict() if finding is not None else None,
        # Not a column either: a flagged site in a category the policy alerts on at once (the report's alert).
        "alert": alert,
    }


def storable(row: AccessRow) -> AccessRow:
    """The row as both databases take it: a search term with %00 or a 20-letter method must not make PostgreSQL
    refuse the row, or a pupil could keep an attempt out of the log. NULs are written as `\\x00`, text that is not
    valid Unicode (undecodable bytes in a URL) is written with backslash escapes, values longer than their column
    are cut and end with `…[cut]`, and columns a row spooled by an older version lacks are None. The same dict
    comes back when nothing needed changing."""
    fixed: AccessRow | None = None
    if not row.keys() >= COLUMNS:
        fixed = {name: row.get(name) for name in COLUMNS}
    for name, length in _TEXT_COLUMNS:
        value = (fixed or row).get(name)
        if type(value) is not str:
            continue
        text = value
        if "\x00" in text:
            text = text.replace("\x00", NUL_MARK)
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        if length is not None and len(text) > length:
            text = text[: length - len(CUT_MARK)] + CUT_MARK
        if text is not value:
            if fixed is None:
                fixed = dict(row)
            fixed[name] = text
    return row if fixed is None else fixed
