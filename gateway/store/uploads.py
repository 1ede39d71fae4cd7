"""Uploads of images and video to social media that the gateway saw: written by the access-log writer from rows
carrying an `upload` (no column), in the transaction that inserts them; read by the DPO's page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from gateway.store.models.consent import UploadEvent
from gateway.store.sites import within

_TEXT_LIMITS = {"media": 64, "detected_by": 32, "filename": 255, "refusal": 32, "method": 16, "host": 255}


def upload_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The access-log rows that carry an upload: one pass with no call a row, as the writer asks it of every batch."""
    return [row for row in rows if row.get("upload") is not None]


def record_uploads(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Add an upload event for each access-log row just inserted in this transaction (only rows really inserted, so
    a batch replayed after an outage adds none twice); returns how many."""
    values = []
    for row in rows:
        upload = row["upload"]
        event = {
            "row_id": row["row_id"], "at": row["at"], "site": row.get("site"), "username": row.get("username"),
            "display_name": row.get("display_name"), "group_name": row.get("group_name"),
            "device": row.get("device"), "client_ip": row.get("client_ip"), "method": row.get("method") or "",
            "host": row.get("host") or "", "path": row.get("path"), "outcome": upload.get("outcome", "refused"),
            "refusal": upload.get("refusal"), "media": upload.get("media"), "detected_by": upload.get("detected_by"),
            "filename": upload.get("filename"), "bytes": upload.get("bytes"),
        }  # fmt: skip
        for name, limit in _TEXT_LIMITS.items():
            if isinstance(event[name], str):
                event[name] = event[name][:limit]
        values.append(event)
    if values:
        connection.execute(insert(UploadEvent), values)
    return len(values)


def recent_uploads(session: Session, *, since: datetime, outcome: str | None = None, limit: int = 500,
                   allowed_sites: tuple[str, ...] = ()) -> list[UploadEvent]:  # fmt: skip
    """Upload events since `since`, newest first, of the given sites (every site for none)."""
    query = select(UploadEvent).where(UploadEvent.at >= since, *within(UploadEvent.site, allowed_sites))
    if outcome is not None:
        query = query.where(UploadEvent.outcome == outcome)
    return list(session.scalars(query.order_by(UploadEvent.at.desc(), UploadEvent.id.desc()).limit(limit)))
