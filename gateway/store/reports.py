"""Reports to the e-safety officer and the headteacher: made from traffic by the access-log writer, or filed by a
person; and the officer's decisions on them.

Traffic makes a report for a flagged visit (a policy `flag` rule), a content or search finding that flags or blocks,
and an attempt on an illegal-content list. One open report stands for one person (username, else device, else
client address), host, category and kind: a repeat raises its hits and last-seen time, so a pupil reloading a page
does not fill the queue. Self-test traffic never makes a report.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, insert, select, update
from sqlalchemy.orm import Session

from gateway.identity.types import IdentitySource
from gateway.store.access_rows import CUT_MARK, NUL_MARK
from gateway.store.models.reports import Report

KINDS = ("page", "search", "flagged_site", "illegal_attempt", "person", "contact")
QUEUES = ("officer", "headteacher")
STATUSES = ("open", "dismissed", "blocked", "escalated", "closed")
# Reports still waiting for someone: the officer's open ones, and the headteacher's escalated or filed ones.
WAITING = ("open", "escalated")
PERSON_FIELDS = ("username", "display_name", "group_name", "school_class", "year_group", "device", "client_ip")
SELFTEST = IdentitySource.SELFTEST.value
# Illegal-list attempts are always high risk; the list says which kind of illegal content it was.
TERRORISM_LISTS = ("ctiru", "terror")

log = logging.getLogger(__name__)
_REPORT = Report.__table__
# (column, longest value it takes or None) for every text column of a report.
_TEXT_COLUMNS = [(c.name, getattr(c.type, "length", None)) for c in _REPORT.columns if c.type.python_type is str]


def person_key(person: Mapping[str, Any]) -> str | None:
    """Who a report is about, for dedup: the username, else the device, else the client address."""
    for field, prefix in (("username", "user"), ("device", "device"), ("client_ip", "ip")):
        value = person.get(field)
        if value:
            return f"{prefix}:{value}"
    return None


def illegal_category(list_name: str | None) -> str:
    name = (list_name or "").lower()
    return "terrorism" if any(word in name for word in TERRORISM_LISTS) else "child_abuse"


def create_report(
    session: Session,
    *,
    kind: str,
    queue: str,
    url: str | None = None,
    host: str | None = None,
    category: str | None = None,
    reporter: str | None = None,
    reporter_role: str | None = None,
    details: str | None = None,
    service: str | None = None,
    happened_at: datetime | None = None,
    other_party: str | None = None,
    person: Mapping[str, Any] | None = None,
    alert: bool = False,
    now: datetime,
    site: str | None = None,
) -> Report:
    """A report filed by a person; the caller commits and audits it."""
    if kind not in KINDS:
        raise ValueError(f"report kind {kind!r}: one of {', '.join(KINDS)}")
    if queue not in QUEUES:
        raise ValueError(f"report queue {queue!r}: one of {', '.join(QUEUES)}")
    about = {field: (person or {}).get(field) for field in PERSON_FIELDS}
    report = Report(
        kind=kind, queue=queue, status="open", created_at=now, last_seen_at=now, hits=1, site=site,
        **about, person_key=person_key(about),
        url=url, host=host.lower().rstrip(".") if host else None, category=category,
        reporter=reporter, reporter_role=reporter_role, details=details,
        service=service, happened_at=happened_at, other_party=other_party,
        alert_state="due" if alert else "none", alert_attempts=0,
    )  # fmt: skip
    session.add(report)
    session.flush()
    return report


def reportable_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The access-log rows that may make a report (a finding, a flag, an illegal-list hit): one pass with no call a
    row, as the writer asks it of every batch (about 0.13 µs a row)."""
    return [row for row in rows
            if row.get("finding") is not None or row["action"] == "flag" or row["source"] == "illegal"]  # fmt: skip


def record_findings(
    connection: Connection,
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Make or update the reports for access-log rows just inserted in this transaction.

    Only rows really inserted may be passed, so a batch replayed after an outage never counts twice. Whether a
    flagged site alerts at once was decided by the proxy against the running policy (the row's `alert`); a finding
    carries its own answer.
    """
    grouped: dict[tuple[str | None, str, str | None, str], list[dict[str, Any]]] = {}
    for row in reportable_rows(rows):
        if row.get("identity_source") == SELFTEST:
            continue
        try:
            values = _report_values(row)
        except (AttributeError, KeyError, TypeError, ValueError):
            # A malformed finding must not roll back the batch and lose its access-log rows; the row keeps the
            # decision for the officer's log search.
            log.exception("no report made from access-log row %s", row.get("row_id"))
            continue
        if values is None:
            continue
        key = (values["person_key"], values["host"], values["category"], values["kind"])
        grouped.setdefault(key, []).append(values)
    for (key_person, host, category, kind), found in grouped.items():
        found.sort(key=lambda values: values["created_at"])
        first, last = found[0], found[-1]
        open_report = connection.execute(
            select(_REPORT.c.id, _REPORT.c.last_seen_at, _REPORT.c.alert_state).where(
                _column_is(_REPORT.c.person_key, key_person), _REPORT.c.host == host,
                _column_is(_REPORT.c.category, category), _REPORT.c.kind == kind, _REPORT.c.status == "open",
            ).order_by(_REPORT.c.id).limit(1)
        ).first()  # fmt: skip
        alert = any(values["alert_state"] == "due" for values in found)
        if open_report is None:
            connection.execute(insert(_REPORT).values(
                **{**first, "last_seen_at": last["last_seen_at"], "hits": len(found),
                   "alert_state": "due" if alert else "none"}))  # fmt: skip
            continue
        changes: dict[str, Any] = {"hits": _REPORT.c.hits + len(found)}
        if open_report.last_seen_at < last["last_seen_at"]:
            changes["last_seen_at"] = last["last_seen_at"]
        # A repeat of a report whose alert went (or was skipped) does not mail again (`gateway.notify.alerts`
        # dedups per person and category); only a report that never alerted becomes due.
        if alert and open_report.alert_state == "none":
            changes["alert_state"] = "due"
        connection.execute(update(_REPORT).where(_REPORT.c.id == open_report.id).values(**changes))


def _column_is(column: ColumnElement[Any], value: object) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def _report_values(row: Mapping[str, Any]) -> dict[str, Any] | None:
    finding = row.get("finding")
    if finding and finding.get("action") in ("flag", "block"):
        kind = "search" if finding.get("kind") == "search" else "page"
        category = finding.get("category")
        score, matches = finding.get("score"), list(finding.get("matches") or ())
        excerpt = finding.get("excerpt") or None
        alert = bool(finding.get("high_risk"))
    elif row["source"] == "illegal":
        kind, category, score, matches, excerpt, alert = "illegal_attempt", illegal_category(row.get("list_name")), \
            None, [], None, True  # fmt: skip
    elif row["action"] == "flag":
        kind, category, score, excerpt = "flagged_site", row.get("list_name") or row.get("rule"), None, None
        matches = [row["matched"]] if row.get("matched") else []
        alert = bool(row.get("alert"))
    else:
        # An analysed page under the thresholds: logged with its finding, but nothing to report.
        return None
    person = {field: row.get(field) for field in PERSON_FIELDS}
    return _storable({
        "kind": kind, "queue": "officer", "status": "open",
        "created_at": row["at"], "last_seen_at": row["at"], "hits": 1, "site": row.get("site"),
        **person, "person_key": person_key(person),
        "url": _url(row), "host": row["host"], "category": category, "score": score,
        "matches": json.dumps(matches[:20], ensure_ascii=False), "excerpt": excerpt,
        "search_terms": row.get("search_terms"), "source_row_id": row.get("row_id"),
        "alert_state": "due" if alert else "none", "alert_attempts": 0,
    })  # fmt: skip


def _storable(values: dict[str, Any]) -> dict[str, Any]:
    """A report as both databases take it, as `access_rows.storable` does for the row: a finding's excerpt or
    terms with a NUL or bytes that are not Unicode, or an over-long category, must not make the database refuse
    the batch, and with it the access-log rows."""
    for name, length in _TEXT_COLUMNS:
        value = values.get(name)
        if not isinstance(value, str):
            continue
        text = value.replace("\x00", NUL_MARK)
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        if length is not None and len(text) > length:
            text = text[: length - len(CUT_MARK)] + CUT_MARK
        values[name] = text
    if values["score"] is not None:
        values["score"] = int(values["score"])
    return values


def _url(row: Mapping[str, Any]) -> str:
    if row.get("method") == "CONNECT":
        return f"https://{row['host']}"
    query = row.get("query")
    return f"{row.get('scheme') or 'http'}://{row['host']}{row.get('path') or '/'}" + (f"?{query}" if query else "")


def matches_of(report: Report) -> list[str]:
    return list(json.loads(report.matches)) if report.matches else []


class StaleReport(ValueError):
    """The report was decided meanwhile (by someone else, or in another tab)."""


def move_report(session: Session, report_id: int, *, came_from: Sequence[str], status: str, by: str, note: str,
                now: datetime, queue: str | None = None) -> Report:  # fmt: skip
    """One step of a report (dismiss, escalate, close), only from the statuses it may come from, so two people
    deciding at once cannot both win. The caller commits and audits."""
    values: dict[str, Any] = {"status": status, "decided_by": by, "decided_at": now, "decision_note": note}
    if queue is not None:
        values["queue"] = queue
    moved = session.execute(update(Report).where(Report.id == report_id, Report.status.in_(came_from))
                            .values(**values)).rowcount  # fmt: skip
    if not moved:
        raise StaleReport(f"report {report_id} is no longer waiting for this step")
    report = session.get(Report, report_id)
    assert report is not None
    session.refresh(report)
    return report
