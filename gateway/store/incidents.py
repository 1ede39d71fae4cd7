"""Circumvention incidents: made from traffic by the access-log writer, and the headteacher's decisions on them.

A detector in the proxy puts what it saw on the access-log row of the attempt it blocked (the row's `incident`, no
column: `Detection.as_row_value()`, plus `auto_ban` and `ban_days` when the policy bans at once for that technique).
The writer passes the rows it has just inserted here, in the same transaction, so a row replayed after an outage
counts once and an outage loses no incident. One open incident stands for one person (username, else device, else
client address) and technique: a repeat raises its hits and last-seen time. A new incident's notice is due.
Self-test rows never make incidents.

An auto-ban incident with a username bans the person at once (`gateway.store.bans`), from the real time it is
written (bans run on the real time, not the gateway's clock, which a rehearsal may pin or move), unless a ban is
already in force then.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.orm import Session

from gateway.circumvention.incident import Confidence, Technique
from gateway.store.access_rows import CUT_MARK, NUL_MARK
from gateway.store.bans import StaleBan, ban_in_force, ban_person, lift_ban
from gateway.store.models.circumvention import Ban, Incident
from gateway.store.reports import PERSON_FIELDS, SELFTEST, person_key

STATUSES = ("open", "confirmed", "dismissed")
# What a ban made by the policy records as its maker.
GATEWAY = "gateway"
TECHNIQUE_NAMES = {
    Technique.WORKAROUND_SITE: "a VPN, proxy or other workaround site",
    Technique.DOH: "DNS over HTTPS",
    Technique.IP_LITERAL: "a site by its bare address",
    Technique.NO_SNI: "an encrypted connection without a server name",
    Technique.NON_TLS_TUNNEL: "a tunnel that is not HTTPS",
    Technique.DOMAIN_FRONTING: "domain fronting",
    Technique.VPN_CLIENT: "a VPN or anonymiser app",
    Technique.BURST: "many blocked sites in a short time",
}

log = logging.getLogger(__name__)
_INCIDENT = Incident.__table__
_TEXT_COLUMNS = [(c.name, getattr(c.type, "length", None)) for c in _INCIDENT.columns if c.type.python_type is str]


class StaleIncident(ValueError):
    """The incident was decided meanwhile (by someone else, or in another tab)."""


def incident_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The access-log rows that carry a detection: one pass with no call a row, as the writer asks it of every
    batch."""
    return [row for row in rows if row.get("incident") is not None]


def record_incidents(connection: Connection, rows: Sequence[Mapping[str, Any]], *, now: datetime | None = None) -> int:
    """Make or update the incidents for access-log rows just inserted in this transaction, and apply the bans the
    policy makes at once, from `now` (the real time by default); returns how many incidents were new.

    Only rows really inserted may be passed, so a batch replayed after an outage never counts twice.
    """
    banned_from = now or datetime.now(UTC)
    grouped: dict[tuple[str | None, str], list[tuple[dict[str, Any], Mapping[str, Any]]]] = {}
    for row in incident_rows(rows):
        if row.get("identity_source") == SELFTEST:
            continue
        try:
            values = _incident_values(row)
        except (AttributeError, KeyError, TypeError, ValueError):
            # A malformed detection must not roll back the batch and lose its access-log rows: the row keeps the
            # blocked attempt for the officer's log search.
            log.exception("no incident made from access-log row %s", row.get("row_id"))
            continue
        grouped.setdefault((values["person_key"], values["technique"]), []).append((values, row))
    made = 0
    for (key_person, technique), found in grouped.items():
        found.sort(key=lambda pair: pair[0]["created_at"])
        first, last = found[0][0], found[-1][0]
        open_incident = connection.execute(
            select(_INCIDENT.c.id, _INCIDENT.c.last_seen_at).where(
                _INCIDENT.c.person_key.is_(None) if key_person is None else _INCIDENT.c.person_key == key_person,
                _INCIDENT.c.technique == technique, _INCIDENT.c.status == "open",
            ).order_by(_INCIDENT.c.id).limit(1)
        ).first()  # fmt: skip
        if open_incident is None:
            incident_id = connection.execute(
                insert(_INCIDENT).values(**{**first, "last_seen_at": last["last_seen_at"], "hits": len(found)})
            ).inserted_primary_key[0]  # fmt: skip
            made += 1
        else:
            incident_id = open_incident.id
            changes: dict[str, Any] = {"hits": _INCIDENT.c.hits + len(found)}
            if open_incident.last_seen_at < last["last_seen_at"]:
                changes["last_seen_at"] = last["last_seen_at"]
            connection.execute(update(_INCIDENT).where(_INCIDENT.c.id == incident_id).values(**changes))
        # Each in turn, in time order: a ban made by the first is in force for the later ones in it.
        for values, row in found:
            if _bans_at_once(row):
                _auto_ban(connection, incident_id, values, row, banned_from)
    return made


def _bans_at_once(row: Mapping[str, Any]) -> bool:
    return bool(row["incident"].get("auto_ban")) and bool(row.get("username"))


def _auto_ban(connection: Connection, incident_id: int, values: Mapping[str, Any], row: Mapping[str, Any],
              at: datetime) -> None:  # fmt: skip
    days = row["incident"].get("ban_days")
    technique = TECHNIQUE_NAMES.get(Technique(values["technique"]), values["technique"])
    # The caller's transaction: the ban commits with the rows, or neither does.
    with Session(bind=connection, join_transaction_mode="rollback_only") as session:
        if ban_in_force(session, row["username"], at) is not None:
            return
        ban_person(
            session, username=row["username"], display_name=row.get("display_name"),
            reason=f"The gateway saw an attempt to get round the filter: {technique} ({values['detector']})",
            created_by=GATEWAY, now=at, incident_id=incident_id,
            ends_at=at + timedelta(days=int(days)) if days is not None else None, site=row.get("site"),
        )  # fmt: skip


def _incident_values(row: Mapping[str, Any]) -> dict[str, Any]:
    detection = row["incident"]
    person = {field: row.get(field) for field in PERSON_FIELDS}
    extra = detection.get("extra") or {}
    return _storable({
        "created_at": row["at"], "last_seen_at": row["at"], "hits": 1, "site": row.get("site"),
        **person, "person_key": person_key(person),
        "technique": Technique(detection["technique"]).value, "detector": str(detection["detector"]),
        "confidence": Confidence(detection["confidence"]).value,
        "host": detection.get("host") or row.get("host"), "sni": detection.get("sni") or row.get("sni"),
        "url": detection.get("url"), "user_agent": detection.get("user_agent"),
        "first_bytes": detection.get("first_bytes"),
        "evidence": json.dumps(dict(extra), ensure_ascii=False, sort_keys=True, default=str) if extra else None,
        "source_row_id": row.get("row_id"),
        "status": "open", "notice_state": "due", "notice_attempts": 0,
    })  # fmt: skip


def _storable(values: dict[str, Any]) -> dict[str, Any]:
    """An incident as both databases take it (as `access_rows.storable` does for the row): evidence with a NUL,
    bytes that are not Unicode or an over-long user agent must not make the database refuse the batch, and with
    it the access-log rows."""
    for name, length in _TEXT_COLUMNS:
        value = values.get(name)
        if not isinstance(value, str):
            continue
        text = value.replace("\x00", NUL_MARK).encode("utf-8", "backslashreplace").decode("utf-8")
        if length is not None and len(text) > length:
            text = text[: length - len(CUT_MARK)] + CUT_MARK
        values[name] = text
    return values


def _decide(session: Session, incident_id: int, *, status: str, by: str, note: str, now: datetime) -> Incident:
    # Only from "open", so two people deciding at once cannot both win.
    moved = session.execute(
        update(Incident).where(Incident.id == incident_id, Incident.status == "open")
        .values(status=status, decided_by=by, decided_at=now, decision_note=note)
    ).rowcount  # fmt: skip
    if not moved:
        raise StaleIncident(f"incident {incident_id} is no longer open")
    incident = session.get(Incident, incident_id)
    assert incident is not None
    session.refresh(incident)
    return incident


def confirm_incident(
    session: Session, incident_id: int, *, by: str, note: str, now: datetime, ban_ends_at: datetime | None
) -> Ban | None:
    """The headteacher confirms an incident: the person is banned until `ban_ends_at` (None: until lifted), or the
    ban they are under runs at least that long. None when the incident names no person (a device or an address
    alone cannot be banned: a ban follows a username). The caller commits and audits."""
    incident = _decide(session, incident_id, status="confirmed", by=by, note=note, now=now)
    if not incident.username:
        return None
    technique = TECHNIQUE_NAMES.get(Technique(incident.technique), incident.technique)
    return ban_person(
        session, username=incident.username, display_name=incident.display_name,
        reason=f"Confirmed by {by}: an attempt to get round the filter ({technique})" + (f". {note}" if note else ""),
        created_by=by, now=now, incident_id=incident.id, ends_at=ban_ends_at, site=incident.site,
    )  # fmt: skip


def dismiss_incident(session: Session, incident_id: int, *, by: str, note: str, now: datetime) -> None:
    """A false positive: the incident goes back to the officer to tune the detector, and a ban the gateway made
    from it at once is lifted (a ban a person made stays theirs to lift). The caller commits and audits."""
    _decide(session, incident_id, status="dismissed", by=by, note=note, now=now)
    made_at_once = session.scalars(select(Ban.id).where(Ban.incident_id == incident_id, Ban.created_by == GATEWAY,
                                                        Ban.lifted_at.is_(None))).all()  # fmt: skip
    for ban_id in made_at_once:
        try:
            lift_ban(session, ban_id, by=by, note=f"incident {incident_id} dismissed: {note}", now=now)
        except StaleBan:
            continue  # it had ended already
